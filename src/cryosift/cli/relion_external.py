"""``cryosift relion-external``: cryosift as a RELION 3.1, 4 or 5 External job.

RELION runs the program from its project folder as
``cryosift relion-external --o External/job012/ --in_mics CtfFind/job004/micrographs_ctf.star
--j 4 --diameter_A 180 --pipeline_control External/job012/``: inputs ``--in_mics`` (pick,
extract, clean), ``--in_mics`` + ``--in_coords`` (extract at those picks, clean) or
``--in_parts`` (clean only), parameters as ``--LABEL VALUE`` pairs. Everything is written under
``--o``, with file names inside STAR files relative to the project folder, and
``RELION_OUTPUT_NODES.star`` naming the coordinates and the clean particles for the next job.

The nodes file carries both RELION 3.1's integer ``_rlnPipeLineNodeType`` and RELION 4/5's
``_rlnPipeLineNodeTypeLabel``: each version reads its own column. The coordinates differ by
version: RELION 4/5 take ``autopick.star`` (a list of coordinate files), RELION 3.1 takes
``coords_suffix_autopick.star`` (the micrographs STAR's name) with each micrograph's
``<JOB>/<path after jobNNN/>_autopick.star``. The version is ``--relion_version``, else the
project's ``default_pipeline.star`` (3.1 writes integer node types, 4 and 5 labels, 5 a
``# version 50001`` line), else the input STAR's version line (50001: 5; 30001: 4), else 5.
The job ends with ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE``; when
``RELION_JOB_ABORT_NOW`` appears it stops after the micrograph at hand, removes that file and
writes ``RELION_JOB_EXIT_ABORTED``. A rerun (RELION's "continue") resumes.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cryosift.errors import InputError, SkipLog

if TYPE_CHECKING:
    import pandas as pd

    from cryosift.pipeline.run import RunConfig

SUCCESS, FAILURE, ABORTED = (
    "RELION_JOB_EXIT_SUCCESS",
    "RELION_JOB_EXIT_FAILURE",
    "RELION_JOB_EXIT_ABORTED",
)
ABORT_NOW = "RELION_JOB_ABORT_NOW"
NODES_FILE = "RELION_OUTPUT_NODES.star"

#: Node types of the outputs, by RELION major version (3: RELION 3.1's integer codes of
#: ``pipeline_jobs.h``, NODE_MIC_COORDS and NODE_PART_DATA; the tests check them against the
#: types the installed RELION gives its own AutoPick and Extract jobs).
NODE_TYPES: dict[int, dict[str, int | str]] = {
    3: {"coords": 2, "particles": 3},
    4: {
        "coords": "MicrographsCoords.star.relion.autopick",
        "particles": "ParticlesData.star.relion",
    },
    5: {
        "coords": "MicrographCoordsGroup.star.relion.autopick",
        "particles": "ParticleGroupMetadata.star.relion",
    },
}

#: Options RELION itself passes, and the parameters a user may add (``--LABEL VALUE``).
PROTOCOL = ("o", "in_mics", "in_parts", "in_coords", "in_mask", "in_3dref", "j", "pipeline_control")
PARAMETERS: dict[str, Callable[[str], Any]] = {
    "diameter_A": float,
    "diameter_px": float,
    "angpix": float,
    "box_A": float,
    "box_px": int,
    "size": int,
    "threshold": float,
    "area_fraction": float,
    "rules": str,
    "model": str,
    "seed": int,
    "device": str,
    "relion_version": lambda v: int(float(v)),  # 3, 3.1, 4 or 5
    "adapt": str,
    "strict_threshold": str,
    "strict_clean": str,  # its older name
    "keep_dark_areas": str,
    "project_dir": str,
}
#: The version assumed when nothing tells.
DEFAULT_VERSION = 5
#: RELION 3.1's coordinate files, the suffix after each micrograph's name.
SUFFIX_31 = "_autopick.star"


def parse_arguments(tokens: list[str]) -> dict[str, str]:
    """``--LABEL VALUE`` pairs into ``{LABEL: VALUE}``; an unknown label is an error."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise InputError(None, f"unexpected argument {tok!r} (want --LABEL VALUE pairs)")
        label = tok[2:]
        if label not in PROTOCOL and label not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise InputError(None, f"unknown parameter --{label}; cryosift takes: {known}")
        if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
            raise InputError(None, f"--{label} needs a value")
        out[label] = tokens[i + 1]
        i += 2
    return out


def star_version(path: Path) -> int | None:
    """RELION's major version from a STAR file's ``# version NNNNN`` line (30001: RELION
    3.1 and 4, taken as 4; 50001: RELION 5), or None when it has none."""
    try:
        with open(path, errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    m = re.search(r"^#\s*version\s+(\d+)", head, re.MULTILINE)
    if not m:
        return None
    return 5 if int(m.group(1)) >= 50000 else 4


def pipeline_version(project: Path) -> int | None:
    """RELION's major version from the project's ``default_pipeline.star``: 3 when its
    processes or nodes have integer types (RELION 3.1), 4 or 5 when they have type labels
    (by its version line), None when it is absent or says neither."""
    path = project / "default_pipeline.star"
    try:
        text = path.read_text(errors="replace")[:200_000]
    except OSError:
        return None
    if re.search(r"_rlnPipeLine(Process|Node)TypeLabel\b", text):
        return star_version(path) or 4
    if re.search(r"_rlnPipeLine(Process|Node)Type\b", text):
        return 3
    return None


def relion_version(args: dict, project: Path) -> tuple[int, str]:
    """The RELION major version to write for, and where it came from."""
    if "relion_version" in args:
        version = _value(args, "relion_version")
        if version not in NODE_TYPES:
            raise InputError(None, f"--relion_version {args['relion_version']}: 3.1, 4 or 5")
        return version, "--relion_version"
    found = pipeline_version(project)
    if found is not None:
        return found, "default_pipeline.star"
    source = args.get("in_mics") or args.get("in_parts")
    found = star_version(Path(source)) if source else None
    if found is not None:
        return found, f"the version line of {source}"
    return DEFAULT_VERSION, "the default (nothing tells)"


def write_output_nodes(outdir: Path, nodes: list[tuple[str, str]], version: int) -> None:
    """``RELION_OUTPUT_NODES.star``: ``data_output_nodes`` with node names, RELION 3.1's
    integer types and RELION 4/5's type labels (of ``version``; 4's for 3.1)."""
    import pandas as pd

    from cryosift.io.star import write_star

    labels = NODE_TYPES[max(version, 4)]
    table = pd.DataFrame(
        {
            "rlnPipeLineNodeName": [name for name, _ in nodes],
            "rlnPipeLineNodeType": [NODE_TYPES[3][kind] for _, kind in nodes],
            "rlnPipeLineNodeTypeLabel": [labels[kind] for _, kind in nodes],
        }
    )
    write_star({"output_nodes": table}, outdir / NODES_FILE)


def after_job_folder(name: str) -> str:
    """What RELION 3.1 keeps of a micrograph's name to place its coordinate file: the part
    after the ``jobNNN/`` folder (``decomposePipelineFileName``), else the whole name."""
    m = re.search(r"job\d{3}/", name)
    return name[m.end() :] if m else name


def write_relion31_coords(out: Path, prefix: str, mics: pd.DataFrame, in_mics: str) -> str:
    """RELION 3.1's layout of the picks in ``out`` (a ``cryosift run`` folder): each
    micrograph's ``Coordinates/<key>_autopick.star`` copied to ``<after jobNNN/>`` +
    :data:`SUFFIX_31`, and ``coords_suffix_autopick.star`` naming the micrographs STAR.
    Returns the node's name."""
    for m in mics.itertuples():
        stem = str(Path(after_job_folder(str(m.name))).with_suffix(""))
        target = out / f"{stem}{SUFFIX_31}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "Coordinates" / f"{m.key}_autopick.star", target)
    node = out / f"coords_suffix{SUFFIX_31}"
    node.write_text(in_mics + "\n")
    return prefix + node.name


def _touch(path: Path) -> None:
    path.write_text("")


def _value(args: dict, label: str):
    return PARAMETERS[label](args[label]) if label in args else None


def _strict_threshold(args: dict[str, str]) -> bool:
    """``strict_threshold`` (or its older name ``strict_clean``): cleaning never loosens."""
    return _yes(args.get("strict_threshold", args.get("strict_clean", "no")))


def _yes(value: str) -> bool:
    """A yes/no parameter (RELION's GUI passes what the user typed)."""
    word = value.strip().lower()
    if word in ("1", "yes", "y", "true", "on"):
        return True
    if word in ("0", "no", "n", "false", "off"):
        return False
    raise InputError(None, f"expected yes or no, got {value!r}")


def run_job(args: dict[str, str], version: int, project: Path) -> list[tuple[str, str]]:
    """Do the job RELION asked for, writing names relative to ``project``; returns the
    output nodes (name, kind) in ``version``'s conventions."""
    from cryosift.device import pick_device
    from cryosift.extract.run import ctf_by_micrograph, find_with_diameter, in_project
    from cryosift.io.micrographs import unskipped
    from cryosift.io.paths import folder_prefix, project_relative
    from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS
    from cryosift.pipeline.run import run_pipeline

    out = Path(args["o"])
    prefix = folder_prefix(out, project)
    rules = args.get("rules", DEFAULT_PRESET)
    if rules not in PRESETS:
        raise InputError(None, f"--rules {rules!r}: choose from {', '.join(PRESETS)}")
    if "in_parts" in args and "in_mics" not in args:
        _clean_only(args, out, rules)
        return [(prefix + "inliers.star", "particles")]
    if "in_mics" not in args:
        raise InputError(None, "give --in_mics (micrographs STAR) or --in_parts (particles STAR)")
    in_mics = Path(args["in_mics"])
    angpix = _value(args, "angpix")
    skips = SkipLog(warn=lambda line: print(f"cryosift: {line}", file=sys.stderr))
    mics, mic_angpix, diameter = find_with_diameter(
        in_mics, _value(args, "diameter_A"), _value(args, "diameter_px"), angpix, skips
    )
    mics = in_project(mics, project)
    given = _given_coords(args, in_mics, angpix, skips)
    if given is not None:
        mics = mics[mics.key.isin(given)].reset_index(drop=True)
    run_pipeline(
        mics,
        _run_config(args, diameter, mic_angpix, rules),
        out,
        ctf=ctf_by_micrograph(mics, None, mic_angpix, in_mics),
        given=given,
        jobs=int(args.get("j", 1)),
        device=pick_device(args.get("device")),
        name_prefix=prefix,
        should_stop=(out / ABORT_NOW).exists,
        inputs={"command": " ".join(["cryosift", *sys.argv[1:]]), "micrographs": str(in_mics)},
        skips=skips,
    )
    mics = unskipped(mics, skips)
    nodes = [(prefix + "inliers.star", "particles")]
    if given is None:
        if version == 3:
            listing = project_relative(in_mics, project)
            nodes.insert(0, (write_relion31_coords(out, prefix, mics, listing), "coords"))
        else:
            nodes.insert(0, (prefix + "autopick.star", "coords"))
    return nodes


def _given_coords(
    args: dict[str, str], in_mics: Path, angpix: float | None, skips: SkipLog
) -> dict | None:
    """Picks per micrograph key from ``--in_coords`` (RELION's coordinate node), or None
    when the job is to pick them; micrographs ``skips`` leaves out have none."""
    if "in_coords" not in args:
        return None
    from cryosift.extract.run import plan_extraction

    plan, _ = plan_extraction(in_mics, args["in_coords"], angpix=angpix, skips=skips)
    return {job.key: job.picks for job in plan}


def _run_config(
    args: dict[str, str], diameter: float, angpix: float | None, rules: str
) -> RunConfig:
    """The pipeline's ``RunConfig`` from the job's parameters."""
    from cryosift.cli.run import box_and_size
    from cryosift.pipeline.run import RunConfig

    box, size = box_and_size(
        diameter, _value(args, "box_px"), _value(args, "box_A"), _value(args, "size"), angpix
    )
    return RunConfig(
        diameter=round(diameter, 3),
        box=box,
        size=size,
        angpix=angpix,
        threshold=_value(args, "threshold"),
        area_fraction=_value(args, "area_fraction"),
        model=args.get("model"),
        rules=rules,
        adapt=_yes(args.get("adapt", "yes")),
        seed=_value(args, "seed") or 0,
        strict_clean=_strict_threshold(args),
        keep_dark_areas=_yes(args.get("keep_dark_areas", "no")),
    )


def _clean_only(args: dict, out: Path, rules: str) -> None:
    from cryosift.outliers.clean import CleanConfig, clean_file

    diameter_px = _value(args, "diameter_px")
    cfg = CleanConfig(
        diameter_A=_value(args, "diameter_A"),
        radius_px=None if diameter_px is None else diameter_px / 2,
        rules=rules,
        seed=_value(args, "seed") or 0,
        loosen=not _strict_threshold(args),
    )
    clean_file(args["in_parts"], cfg, out, angpix=_value(args, "angpix"))


def main(ctx: typer.Context) -> None:
    """Run as a RELION 3.1/4/5 External job (--o, --in_mics/--in_parts, --LABEL VALUE ...)."""
    try:
        args = parse_arguments(list(ctx.args))
        if "o" not in args:
            raise InputError(None, "--o (the job's output folder) is required")
    except InputError as exc:
        print(f"cryosift relion-external: error: {exc.message}", file=sys.stderr)
        raise typer.Exit(2) from None
    out = Path(args["o"])
    out.mkdir(parents=True, exist_ok=True)
    for name in (SUCCESS, FAILURE, ABORTED):
        (out / name).unlink(missing_ok=True)
    from cryosift.pipeline.run import Aborted

    try:
        project = Path(args.get("project_dir", "."))
        version, why = relion_version(args, project)
        print(f"cryosift relion-external: writing for RELION {version} ({why})", flush=True)
        nodes = run_job(args, version, project)
        write_output_nodes(out, nodes, version)
    except Aborted:
        (out / ABORT_NOW).unlink(missing_ok=True)
        _touch(out / ABORTED)
        print("cryosift relion-external: aborted by RELION; rerun to continue", file=sys.stderr)
        raise typer.Exit(1) from None
    except InputError as exc:
        _touch(out / FAILURE)
        print(f"cryosift relion-external: error: {exc.message}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _touch(out / FAILURE)
        print("cryosift relion-external: interrupted", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception:
        _touch(out / FAILURE)
        raise
    _touch(out / SUCCESS)
    print(f"cryosift relion-external: done; outputs in {os.fspath(out)}", file=sys.stderr)
