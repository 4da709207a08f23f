"""Ctrl-C inside :func:`ssm_jax.training.interrupt.deferred` waits for the next step boundary."""

from __future__ import annotations

import os
import signal

import pytest

from ssm_jax.training import interrupt


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_waits_for_check_and_the_handler_is_restored():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            ctrl_c()  # would raise here without the deferral
            seen.append("after")
            interrupt.check()
            pytest.fail("check() did not raise")  # pragma: no cover
    assert seen == ["after"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            ctrl_c()
            seen.append("first")
            ctrl_c()
            pytest.fail("the second Ctrl-C did not raise")  # pragma: no cover
    assert seen == ["first"]


def test_a_ctrl_c_after_the_last_check_raises_when_the_block_ends():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            interrupt.check()  # nothing pending: no-op
            ctrl_c()
            seen.append("end")
    assert seen == ["end"]
    with interrupt.deferred():  # the next block starts clean
        interrupt.check()


def test_a_decorated_function_defers_on_every_call():
    seen = []

    @interrupt.deferred()
    def body():
        ctrl_c()
        seen.append("body")

    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            body()
    assert seen == ["body", "body"]


def test_nested_blocks_keep_the_outer_deferral():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            with interrupt.deferred():  # e.g. fit inside fit: a no-op
                pass
            ctrl_c()  # still deferred after the inner block ended
            seen.append("after inner")
    assert seen == ["after inner"]


def test_another_sigint_handler_is_left_alone():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda *_: calls.append("theirs"))
    try:
        with interrupt.deferred():
            ctrl_c()
            interrupt.check()  # nothing deferred: their handler took it
        assert calls == ["theirs"]
    finally:
        signal.signal(signal.SIGINT, previous)
