"""Write a set of output files all-or-nothing: temp files first, renamed only when all are written."""
from __future__ import annotations

import os
from pathlib import Path


def write_all(files: dict[str, "str | bytes | callable"]) -> list[Path]:
    """Write {path: text | bytes | writer(path)}; on any failure no target file is created or changed."""
    temps = []
    try:
        for target, content in files.items():
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(target)
            tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
            temps.append((tmp, target))
            if callable(content):
                content(tmp)
            elif isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                tmp.write_text(content)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in temps:
        os.replace(tmp, target)
    return [t for _, t in temps]


def remove_stale_temps(target: Path) -> None:
    """Delete `.NAME.tmpPID` files a killed earlier run left beside `target` (those of live processes stay)."""
    for tmp in target.parent.glob(f".{target.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def unwritable_reason(folder: "str | Path") -> str:
    """Why files cannot be written into `folder` ('' if they can): its nearest existing ancestor must be a folder in
    which a small file can be created, written, synced and removed — which catches a file standing where a folder
    must be, read-only and full file systems, and works as root (where permission bits do not stop anything)."""
    import tempfile

    existing = next(p for p in (Path(folder).resolve(), *Path(folder).resolve().parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return f"{existing}: {exc.strerror or exc}"
    return ""
