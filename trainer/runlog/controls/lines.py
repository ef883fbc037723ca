"""The control file's lines read as commands: bounded (a line too long or nested too deep is never
parsed), one flat JSON object each; of a backlog, the latest pause/resume and split win, and a stop
always counts.
"""

from __future__ import annotations

import json
from typing import Any

#: `Controls.stop_reason` of a stop asked through the control file.
VIEWER_STOP = "stopped from a viewer (bstui --attach)"
#: A command line longer than this is not a command: it is dropped whole, up to its newline (the app's
#: commands are under 100 bytes), so no part of it is ever parsed.
MAX_LINE_BYTES = 4096
#: A command is one flat JSON object: a line nested deeper than this is refused before it is parsed.
MAX_DEPTH = 4
#: What one read takes; each poll reads the file to its end in reads of this size.
READ_BYTES = 1 << 20
#: Split-backward chunks a viewer may ask for (the app offers 2-64).
MAX_CHUNKS = 64


def nesting_depth(line: bytes) -> int:
    """How deeply `[` and `{` nest in `line`, outside JSON strings (the parser recurses this deep)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_control(line: bytes) -> dict[str, Any] | None:
    """One line of the control file as a command for `Controls.apply`, or None when it is not one
    (too long, nested too deep, not JSON, not an object, an unknown command, values of the wrong
    type). Never raises, whatever the bytes."""
    if len(line) > MAX_LINE_BYTES:
        return None
    if line.count(b"[") + line.count(b"{") > MAX_DEPTH and nesting_depth(line) > MAX_DEPTH:
        return None
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(msg, dict):
        return None
    cmd = msg.get("cmd")
    if cmd in ("pause", "resume"):
        return {"cmd": cmd}
    if cmd == "stop":
        return {"cmd": "stop", "reason": VIEWER_STOP}
    if cmd == "split":
        enabled, chunks = msg.get("enabled"), msg.get("chunks")
        if not isinstance(enabled, bool):
            return None
        if not enabled:
            return {"cmd": "split", "enabled": False, "chunks": 1}
        if isinstance(chunks, bool) or not isinstance(chunks, int) or not 2 <= chunks <= MAX_CHUNKS:
            return None
        return {"cmd": "split", "enabled": True, "chunks": chunks}
    return None


def latest_commands(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A backlog of commands reduced to what it ends in: the last split, the last pause or resume,
    and a stop if there was any (a stop is never taken back). Applying these leaves `Controls` as
    applying the whole backlog in order would, with one change per kind."""
    split = pause = stop = None
    for command in commands:
        if command["cmd"] == "split":
            split = command
        elif command["cmd"] in ("pause", "resume"):
            pause = command
        elif command["cmd"] == "stop":
            stop = stop or command
    return [c for c in (split, pause, stop) if c is not None]


#: The kinds of command a backlog is reduced to, and the words that a line of each must hold.
_KINDS = {"split": (b"split",), "pause": (b"pause", b"resume"), "stop": (b"stop",)}


def latest_in(lines: list[bytes]) -> list[dict[str, Any]]:
    """`latest_commands` of these lines, parsing as few as it can: from the end back, only the lines
    that could still matter (naming a kind of command not found yet, or holding a JSON escape that
    could spell one), found by the bytes search, until a split, a pause/resume and a stop are found.
    A flood of junk or of one command costs a search, not a parse a line."""
    text = b"\n".join(lines)
    found: dict[str, dict[str, Any]] = {}
    end = len(text)
    last: dict[bytes, int] = {}  # each word's last place before `end` (searched again only once passed)
    every_word = [word for words in _KINDS.values() for word in words]
    escapes = []  # lines with JSON escapes matter only where the escapes spell a word (seen once, whole)
    if b"\\u" in text:
        spelled = text.decode("unicode_escape", "ignore").encode("utf-8", "ignore")
        if any(spelled.count(word) != text.count(word) for word in every_word):
            escapes = [b"\\u"]
    while len(found) < len(_KINDS):
        needles = [word for kind, words in _KINDS.items() if kind not in found for word in words] + escapes
        for word in needles:
            if last.get(word, end) >= end:
                last[word] = text.rfind(word, 0, end)
        at = max(last[word] for word in needles)
        if at < 0:
            break
        start = text.rfind(b"\n", 0, at) + 1
        stop = text.find(b"\n", at)
        line = text[start : stop if stop >= 0 else len(text)]
        words = [word for word in needles if word in line and word != b"\\u"]
        if not words:  # found by its escapes: parsed only if they spell a word that matters
            spelled = line.decode("unicode_escape", "ignore").encode("utf-8", "ignore")
            words = [word for word in needles if word in spelled and word != b"\\u"]
        command = parse_control(line) if words else None
        if command is not None:
            found.setdefault("pause" if command["cmd"] == "resume" else command["cmd"], command)
        end = start  # on to the lines before this one
    return [found[k] for k in ("split", "pause", "stop") if k in found]
