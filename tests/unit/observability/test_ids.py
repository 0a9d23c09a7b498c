"""Process-unique ids: distinct within a process, distinct across a fork, in the promised shapes."""

from __future__ import annotations

import os
import re
import uuid

from tgm.observability.ids import new_message_id, new_request_id


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_message_ids_have_the_shape_of_a_uuid_and_never_repeat() -> None:
    ids = [new_message_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)


def test_a_forked_child_draws_its_own_prefix() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_id = new_request_id()
    assert len(child_id) == 32
    assert child_id[:16] != parent_id[:16]
