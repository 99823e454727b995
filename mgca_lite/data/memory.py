"""`MemorySource`: render or read every record of a source once and keep it in memory.

SynthCXR renders at several hundred images/s, which would compete with training for the same CPU
cores every epoch; rendering each sample once costs seconds and makes later epochs (and later
encoders in a probe comparison) free.
"""
from __future__ import annotations

from tqdm.auto import tqdm


class MemorySource:
    """Wrap a source (`SynthSource`, `ManifestSource`) and keep every record it returns.

    mask_findings: the findings whose masks a manifest source should read (SynthCXR records always
    carry all of theirs).
    """

    def __init__(self, source, desc: str = "render", progress: bool = True,
                 mask_findings: tuple[str, ...] = ()):
        self.indices = getattr(source, "indices", None)      # SynthCXR: the synthetic indices
        self.study_ids = getattr(source, "study_ids", None)  # a manifest: the rows' study_id
        self.records = [source.record(i, mask_findings)
                        for i in tqdm(range(len(source)), desc=desc, disable=not progress, leave=False)]

    def __len__(self) -> int:
        return len(self.records)

    def record(self, i: int, mask_findings: tuple[str, ...] = ()) -> dict:
        return self.records[i]
