"""Movement analysis on keypoint tracks: joint angles, range of motion, track tables.

* :mod:`posetune.analysis.tracks` — :class:`TrackTable` and the per-frame track CSV format;
* :mod:`posetune.analysis.angles` — joint-angle geometry and named presets (elbow, knee, ...);
* :mod:`posetune.analysis.rom` — range-of-motion numbers, plots and Markdown/HTML reports.
"""

from posetune.analysis.angles import (
    ANGLES,
    available_angles,
    compute_angle,
    compute_angles,
    joint_angle,
    segment_angle,
)
from posetune.analysis.rom import RomAnalysis, analyze_rom, write_rom_report
from posetune.analysis.tracks import (
    TrackTable,
    TrackTableBuilder,
    read_track_csv,
    read_tracks,
    write_track_csv,
)

__all__ = [
    "ANGLES", "available_angles", "compute_angle", "compute_angles", "joint_angle", "segment_angle",
    "RomAnalysis", "analyze_rom", "write_rom_report",
    "TrackTable", "TrackTableBuilder", "read_track_csv", "read_tracks", "write_track_csv",
]
