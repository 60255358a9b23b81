"""Writing parsed items into the vault: new ones added, known ones updated or skipped."""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wifisync.errors import UsageError
from wifisync.model.items import AttachmentRef, ItemState
from wifisync.transfer.fields import NUMBER, URL, USERNAME
from wifisync.transfer.model import NOTES, ImportedItem, ImportFormatError, ParseResult, Problem
from wifisync.vault.attachments import DEFAULT_MAX_BYTES, Source, store_chunks
from wifisync.vault.lookup import plural
from wifisync.vault.unlocked import Vault

#: Items written per transaction: few commits for a big import, short locks for the daemon.
BATCH = 1000
OUTCOMES = ("imported", "updated", "skipped")

Progress = Callable[[int, int], None]


def source_key(family: str, item: ImportedItem) -> str:
    """The key that finds this source item again on a re-import.

    The source's own record ID when it has one; otherwise a hash of what identifies the
    item (type, title, user name, first URL, card number), so a changed password still
    updates the same item.
    """
    if item.source_id is not None:
        return f"{family}:{item.source_id}" if family else item.source_id
    values = item.values
    identity = [item.type, item.title, values.get(USERNAME, ""), values.get(URL, ""),
                values.get(NUMBER, "")]
    if not any(identity[2:]):
        identity.append(values.get(NOTES, ""))
    digest = hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()
    return f"{family or 'wifisync'}#{digest[:32]}"


@dataclass(slots=True)
class ImportSummary:
    """What an import did (or, in a dry run, would do), by item type."""

    format: str
    dry_run: bool
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    custom_fields: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    attachments: Counter[str] = field(default_factory=Counter)  # imported / unchanged

    def count(self, type_: str, outcome: str) -> None:
        """Count one item's outcome."""
        self.counts.setdefault(type_, Counter())[outcome] += 1

    def total(self, outcome: str) -> int:
        """Items of every type with this outcome."""
        return sum(c[outcome] for c in self.counts.values())

    def lines(self) -> list[str]:
        """The summary as the CLI prints it."""
        head = f"{self.format}: " + ", ".join(f"{self.total(o)} {o}" for o in OUTCOMES)
        out = [head + (" (dry run: nothing written)" if self.dry_run else "")]
        for type_ in sorted(self.counts):
            c = self.counts[type_]
            out.append(f"  {type_}: " + ", ".join(f"{c[o]} {o}" for o in OUTCOMES))
        if self.attachments:
            out.append("attachments: " + ", ".join(
                f"{self.attachments[o]} {o}" for o in ("imported", "unchanged")))
        if self.custom_fields:
            kept = ", ".join(f"{name} ({n})" for name, n in sorted(self.custom_fields.items()))
            out.append(f"custom fields kept: {kept}")
        if self.problems:
            out.append(f"{plural(len(self.problems), 'item or part', 'items or parts')} "
                       "not imported:")
            out.extend(f"  {p}" for p in self.problems)
        return out


def import_items(vault: Vault, parsed: ParseResult, family: str, extra_tags: Sequence[str] = (),
                 dry_run: bool = False, progress: Progress | None = None,
                 max_attachment_bytes: int = DEFAULT_MAX_BYTES) -> ImportSummary:
    """Add new items and update changed ones, in a few transactions; nothing in a dry run.

    Attached files are stored after their batch of items is committed, a chunk at a
    time: an import transaction never holds a file.
    """
    summary = ImportSummary(parsed.format, dry_run, problems=list(parsed.problems))
    known: dict[str, tuple[bytes, ItemState]] = {}
    for view in vault.items():
        if view.state.source is not None:
            known[view.state.source] = (view.id, view.state)
        known.setdefault(f"wifisync:{view.id_text}", (view.id, view.state))
    used: Counter[str] = Counter()
    total = len(parsed.items)
    for start in range(0, total, BATCH):
        batch = parsed.items[start:start + BATCH]
        written: list[tuple[ImportedItem, bytes | None]] = []
        if dry_run:
            for item in batch:
                written.append((item, _one(vault, item, _unique(source_key(family, item), used),
                                           known, extra_tags, summary, write=False)))
        else:
            with vault.store.transaction(), vault.writing_together():
                for item in batch:
                    written.append((item, _one(vault, item,
                                               _unique(source_key(family, item), used),
                                               known, extra_tags, summary, write=True)))
        for item, item_id in written:
            if item.attachments:
                _attach_files(vault, item, item_id, summary, max_attachment_bytes, dry_run)
        if progress is not None:
            progress(start + len(batch), total)
    return summary


def _unique(key: str, used: Counter[str]) -> str:
    """Two source items with the same key (identical rows) stay two items, every time."""
    used[key] += 1
    return key if used[key] == 1 else f"{key}~{used[key]}"


def _attach_files(vault: Vault, item: ImportedItem, item_id: bytes | None,
                  summary: ImportSummary, max_bytes: int, dry_run: bool) -> None:
    """Store an imported item's files and refer to them from it (one new version at most)."""
    if dry_run or item_id is None:
        summary.attachments["imported"] += len(item.attachments)
        return
    held = vault.get(item_id).state.attachments
    refs: dict[str, AttachmentRef] = {}
    for f in item.attachments:
        source: Source | None = None
        try:
            source = Source.of_stream(f.open())
            ref = store_chunks(vault, source, max_bytes, f"attachment {f.name!r}")
        except (UsageError, ImportFormatError, OSError, zipfile.BadZipFile, zlib.error,
                EOFError) as exc:
            summary.problems.append(Problem(f"{item.title!r}: attachment {f.name!r}",
                                            f"not imported: {exc}"))
            continue
        finally:
            if source is not None:
                source.close()
        if f.name in held and held[f.name][0] == ref:
            summary.attachments["unchanged"] += 1
            continue
        refs[f.name] = ref
        summary.attachments["imported"] += 1
    if refs:
        vault.edit_attachments(item_id, refs)


def _one(vault: Vault, item: ImportedItem, key: str,
         known: dict[str, tuple[bytes, ItemState]], extra_tags: Sequence[str],
         summary: ImportSummary, write: bool) -> bytes | None:
    """Add or update one item; returns its ID (None for a new item in a dry run)."""
    tags = sorted({*item.tags, *extra_tags})
    match = known.get(key)
    if match is None:
        new_id = None
        if write:
            new_id = vault.add(item.title, item.type, dict(item.fields), tags,
                               hidden=sorted(item.hidden), source=key)
        summary.count(item.type, "imported")
        summary.custom_fields.update(item.custom)
        return new_id
    item_id, state = match
    values = state.values
    changed = {k: v for k, v in item.fields if values.get(k) != v}
    new_tags = sorted({*state.tags, *tags})
    new_hidden = sorted({*state.hidden, *item.hidden})
    if (not changed and item.title == state.title and item.type == state.type
            and new_tags == state.tags and new_hidden == state.hidden):
        summary.count(item.type, "skipped")
        return item_id
    if write:
        vault.edit(item_id, title=item.title, fields=changed, tags=new_tags, type_=item.type,
                   hidden=new_hidden, source=key if state.source is None else None)
    summary.count(item.type, "updated")
    summary.custom_fields.update(n for n in item.custom if n in changed)
    return item_id
