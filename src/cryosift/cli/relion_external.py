"""``cryosift relion-external``: cryosift as a RELION 4/5 External job.

RELION runs the program from its project folder as
``cryosift relion-external --o External/job012/ --in_mics CtfFind/job004/micrographs_ctf.star
--j 4 --diameter_A 180 --pipeline_control External/job012/``: inputs ``--in_mics`` (pick,
extract, clean), ``--in_mics`` + ``--in_coords`` (extract at those picks, clean) or
``--in_parts`` (clean only), parameters as ``--LABEL VALUE`` pairs. Everything is written under
``--o``, with file names inside STAR files relative to the project folder, and
``RELION_OUTPUT_NODES.star`` naming the coordinates and the clean particles for the next job.
The job ends with ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE``; when
``RELION_JOB_ABORT_NOW`` appears it stops after the micrograph at hand, removes that file and
writes ``RELION_JOB_EXIT_ABORTED``. A rerun (RELION's "continue") resumes.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pandas as pd
import typer

from cryosift.errors import InputError
from cryosift.io.star import write_star

SUCCESS, FAILURE, ABORTED = (
    "RELION_JOB_EXIT_SUCCESS",
    "RELION_JOB_EXIT_FAILURE",
    "RELION_JOB_EXIT_ABORTED",
)
ABORT_NOW = "RELION_JOB_ABORT_NOW"
NODES_FILE = "RELION_OUTPUT_NODES.star"

#: Node type labels of the outputs, by RELION major version.
NODE_TYPES = {
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
PARAMETERS = {
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
    "relion_version": int,
}


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
    3.1 and 4, 50001: RELION 5), or None when it has none."""
    try:
        with open(path, errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    m = re.search(r"^#\s*version\s+(\d+)", head, re.MULTILINE)
    if not m:
        return None
    return 5 if int(m.group(1)) >= 50000 else 4


def write_output_nodes(outdir: Path, nodes: list[tuple[str, str]]) -> None:
    """``RELION_OUTPUT_NODES.star``: ``data_output_nodes`` with node names and type labels."""
    table = pd.DataFrame(nodes, columns=["rlnPipeLineNodeName", "rlnPipeLineNodeTypeLabel"])
    write_star({"output_nodes": table}, outdir / NODES_FILE)


def _touch(path: Path) -> None:
    path.write_text("")


def _value(args: dict, label: str):
    return PARAMETERS[label](args[label]) if label in args else None


def run_job(args: dict[str, str]) -> list[tuple[str, str]]:
    """Do the job RELION asked for; returns the output nodes (name, kind)."""
    from cryosift.cli.run import box_and_size
    from cryosift.extract.run import ctf_by_micrograph
    from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS
    from cryosift.picking.model import pick_device
    from cryosift.picking.run import find_with_diameter
    from cryosift.pipeline.run import RunConfig, run_pipeline

    out = Path(args["o"])
    prefix = args["o"].rstrip("/") + "/"
    abort = out / ABORT_NOW
    rules = args.get("rules", DEFAULT_PRESET)
    if rules not in PRESETS:
        raise InputError(None, f"--rules {rules!r}: choose from {', '.join(PRESETS)}")
    jobs = int(args.get("j", 1))

    if "in_parts" in args and "in_mics" not in args:
        _clean_only(args, out, rules)
        return [(prefix + "inliers.star", "particles")]
    if "in_mics" not in args:
        raise InputError(None, "give --in_mics (micrographs STAR) or --in_parts (particles STAR)")
    in_mics = Path(args["in_mics"])
    angpix = _value(args, "angpix")
    mics, mic_angpix, diameter = find_with_diameter(
        in_mics, _value(args, "diameter_A"), _value(args, "diameter_px"), angpix
    )
    given = None
    if "in_coords" in args:
        from cryosift.extract.run import plan_extraction

        plan, _ = plan_extraction(in_mics, args["in_coords"], angpix=angpix)
        given = {job.key: job.picks for job in plan}
    box, size = box_and_size(
        diameter, _value(args, "box_px"), _value(args, "box_A"), _value(args, "size"), mic_angpix
    )
    cfg = RunConfig(
        diameter=round(diameter, 3),
        box=box,
        size=size,
        angpix=mic_angpix,
        threshold=_value(args, "threshold"),
        area_fraction=_value(args, "area_fraction"),
        model=args.get("model"),
        rules=rules,
        adapt=str(args.get("adapt", "yes")).lower() not in ("0", "no", "false", "off"),
        seed=_value(args, "seed") or 0,
    )
    run_pipeline(
        mics,
        cfg,
        out,
        ctf=ctf_by_micrograph(mics, None, mic_angpix, in_mics),
        given=given,
        jobs=jobs,
        device=pick_device(args.get("device")),
        name_prefix=prefix,
        should_stop=abort.exists,
        inputs={"command": " ".join(["cryosift", *sys.argv[1:]]), "micrographs": str(in_mics)},
    )
    nodes = [(prefix + "inliers.star", "particles")]
    if given is None:
        nodes.insert(0, (prefix + "autopick.star", "coords"))
    return nodes


def _clean_only(args: dict, out: Path, rules: str) -> None:
    from cryosift.outliers.clean import CleanConfig, clean_file

    diameter_px = _value(args, "diameter_px")
    cfg = CleanConfig(
        diameter_A=_value(args, "diameter_A"),
        radius_px=None if diameter_px is None else diameter_px / 2,
        rules=rules,
        seed=_value(args, "seed") or 0,
    )
    clean_file(args["in_parts"], cfg, out, angpix=_value(args, "angpix"))


def main(ctx: typer.Context) -> None:
    """Run as a RELION 4/5 External job (--o, --in_mics/--in_parts, --LABEL VALUE ...)."""
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
        source = Path(args.get("in_mics") or args.get("in_parts") or "")
        version = _value(args, "relion_version") or star_version(source) or 5
        if version not in NODE_TYPES:
            raise InputError(None, f"--relion_version {version}: 4 or 5")
        nodes = run_job(args)
        write_output_nodes(out, [(name, NODE_TYPES[version][kind]) for name, kind in nodes])
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
