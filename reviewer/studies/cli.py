"""``reviewer study create|simulate|analyze|export|status``: reader studies headless."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser("study", help="reader studies: create, simulate readers, analyze (FROC/ROC MRMC), export")
    ssub = p.add_subparsers(dest="study", metavar="WHAT", required=True)

    c = ssub.add_parser("create", help="build a study folder (study.json + images/ with opaque names + truth)")
    c.add_argument("--out", required=True, metavar="DIR", help="the study folder to write")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", nargs="?", const="mri", choices=("mri", "ct"),
                     help="from the demo data: 'mri' (default) knee slices with/without FNAFs reconstructed by the "
                          "demo standard and robust U-Nets; 'ct' demo chest CTs with known nodules")
    src.add_argument("--cases", metavar="CSV",
                     help="explicit inputs: CSV with case_id,condition,image[,x,y,z,diameter_mm] (lesions in LPS mm)")
    src.add_argument("--from-fnaf-eval", metavar="DIR", help="the --out folder of `reviewer fnaf eval`")
    src.add_argument("--from-insertions", metavar="JSON",
                     help="synthetic nodule insertions: a JSON list of {volume, findings[, case_id, condition]}")
    c.add_argument("--name", help="study name (default: from the source)")
    c.add_argument("--reader", action="append", default=[], metavar="ID", help="a reader id (repeat)")
    c.add_argument("--paradigm", choices=("froc", "roc", "both"), default="froc")
    c.add_argument("--rating-scale", choices=("1-5", "0-100"), default="1-5")
    c.add_argument("--radius", type=float, metavar="MM", help="FROC acceptance radius (default: 5 mm MRI, 10 mm CT)")
    c.add_argument("--seed", type=int, default=0, help="randomisation seed (also picks demo cases)")
    c.add_argument("--allow-back", action="store_true", help="let readers go back to earlier cases")
    c.add_argument("--time-limit", type=float, metavar="S", help="active reading time limit per case (seconds)")
    c.add_argument("--instructions", help="instructions shown to readers (default: generated from the paradigm)")
    c.add_argument("--condition", default="CT", help="--from-insertions: condition label when entries give none")
    c.add_argument("--source-model", help="--from-fnaf-eval: the model whose features make the cases (default: first)")
    c.add_argument("--n-abnormal", type=int, help="number of cases with a lesion (demo / FNAF eval)")
    c.add_argument("--n-normal", type=int, help="number of normal cases (demo)")
    c.add_argument("--force", action="store_true", help="overwrite a study already in --out (its readings too)")
    c.set_defaults(handler=_cmd_create)

    s = ssub.add_parser("simulate", help="simulated readers read the study through the store (piloting, sizing)")
    _study_arg(s)
    s.add_argument("--readers", type=int, required=True, metavar="N")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sensitivity", action="append", default=[], metavar="P|COND=P",
                   help="probability of marking a lesion (one value, or per condition; repeat); default 0.7")
    s.add_argument("--false-marks-per-case", action="append", default=[], metavar="L|COND=L",
                   help="Poisson mean of false marks per case (one value or per condition); default 0.3")
    s.add_argument("--separation", type=float, default=2.0, help="true-mark latent mean in SD units (default 2)")
    s.add_argument("--prefix", default="sim", help="simulated reader ids: PREFIX-01, PREFIX-02, ...")
    s.add_argument("--power", type=int, metavar="K",
                   help="sizing: instead of adding readers to the study, simulate K replicate studies (temporary "
                        "stores) and report the share with a significant paired comparison")
    s.add_argument("--alpha", type=float, default=0.05, help="--power: significance level (default 0.05)")
    s.add_argument("--fom", choices=("wafroc", "afroc", "roc_auc"), default="wafroc", help="--power: figure of merit")
    s.add_argument("--bootstrap", type=int, default=200, metavar="N", help="--power: bootstrap resamples per replicate")
    s.set_defaults(handler=_cmd_simulate)

    a = ssub.add_parser("analyze", help="LLF, NL/case, FROC, AFROC/wAFROC, ROC AUC, bootstrap CIs, agreement, "
                                        "paired comparison, plots")
    _study_arg(a)
    a.add_argument("--json", metavar="PATH", help="write the analysis as JSON")
    a.add_argument("--out", metavar="DIR", help="write froc.png, wafroc.png, roc.png, fom.png and analysis.json")
    a.add_argument("--bootstrap", type=int, default=2000, metavar="N")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--humans-only", action="store_true", help="leave simulated readers out")
    a.set_defaults(handler=_cmd_analyze)

    e = ssub.add_parser("export", help="csv (long), imrmc (iMRMC input), jafroc (RJafroc .xlsx), json (whole study)")
    _study_arg(e)
    e.add_argument("--format", required=True, choices=("csv", "imrmc", "jafroc", "json"))
    e.add_argument("--out", required=True, metavar="PATH")
    e.add_argument("--humans-only", action="store_true", help="leave simulated readers out")
    e.set_defaults(handler=_cmd_export)

    t = ssub.add_parser("status", help="readers' progress, schema version and database integrity")
    _study_arg(t)
    t.set_defaults(handler=_cmd_status)

    r = ssub.add_parser("read", help="read the study in the full-screen GUI (blinded; resumes where you stopped)")
    _study_arg(r)
    r.add_argument("--reader", required=True, metavar="ID", help="your reader id (one of the study's readers)")
    r.add_argument("--windowed", action="store_true", help="a normal window instead of full screen")
    r.add_argument("--screenshot", metavar="PNG", help="render the first case to a PNG and exit (documentation, CI)")
    r.set_defaults(handler=_cmd_read)


def _study_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", metavar="STUDY", help="study folder (study.json; readings in its study.db)")
    p.add_argument("--db", metavar="URL", help="SQLAlchemy URL of the store (e.g. postgresql+psycopg://host/db); "
                                               "default: STUDY/study.db (SQLite)")


def _open(args):
    from reviewer.studies.store import open_store

    if args.db:
        return open_store(args.db, study=args.study)
    return open_store(args.study)


def _settings(args, default_name: str, default_radius: float):
    from reviewer.studies.create import StudySettings

    return StudySettings(name=args.name or default_name, readers=list(args.reader), paradigm=args.paradigm,
                         rating_scale=args.rating_scale, acceptance_radius_mm=args.radius or default_radius,
                         seed=args.seed, allow_back=args.allow_back, time_limit_s=args.time_limit,
                         instructions=args.instructions or "")


def _cmd_create(args: argparse.Namespace) -> int:
    from reviewer.jobs import run_with_progress_bar
    from reviewer.studies import create as C

    out = Path(args.out)
    if args.demo == "mri":
        d = run_with_progress_bar(C.create_demo_mri, out, _settings(args, "demo FNAF study (knee MRI 4x)", 5.0),
                                  n_abnormal=args.n_abnormal or 4, n_normal=args.n_normal or 4, seed=args.seed,
                                  force=args.force, label="demo MRI study")
    elif args.demo == "ct":
        d = run_with_progress_bar(C.create_demo_ct, out, _settings(args, "demo chest CT nodule study", 10.0),
                                  n_abnormal=args.n_abnormal or 3, n_normal=args.n_normal or 3, seed=args.seed,
                                  force=args.force, label="demo CT study")
    elif args.cases:
        d = run_with_progress_bar(C.create_from_manifest, args.cases, out, _settings(args, out.name, 5.0),
                                  force=args.force, label="study")
    elif args.from_fnaf_eval:
        d = run_with_progress_bar(C.create_from_fnaf_eval, args.from_fnaf_eval, out,
                                  _settings(args, f"FNAF study from {Path(args.from_fnaf_eval).name}", 5.0),
                                  source_model=args.source_model, n_abnormal=args.n_abnormal, seed=args.seed,
                                  force=args.force, label="FNAF study")
    else:
        d = run_with_progress_bar(C.create_from_insertions, args.from_insertions, out,
                                  _settings(args, f"nodule study from {Path(args.from_insertions).name}", 10.0),
                                  condition=args.condition, force=args.force, label="insertion study")
    n_les = sum(len(c.truth.lesions) for c in d.cases)
    n_norm = sum(c.truth.normal for c in d.cases)
    print(f"wrote {out / 'study.json'}: {len(d.cases)} cases ({len(d.cases) - n_norm} with {n_les} lesions, "
          f"{n_norm} normal) x {len(d.conditions)} condition(s) [{', '.join(d.conditions)}], "
          f"{len(d.items())} images in {out / 'images'}, paradigm {d.paradigm}, readers: "
          f"{', '.join(r.id for r in d.readers) or 'none yet'}")
    return 0


def _per_condition(values: list[str], default: float, what: str):
    if not values:
        return default
    out: dict[str, float] = {}
    for v in values:
        cond, sep, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            raise SystemExit(f"error: --{what} expects P or CONDITION=P, got {v!r}") from None
        out[cond if sep else "*"] = x
    return out["*"] if list(out) == ["*"] else out


def _cmd_simulate(args: argparse.Namespace) -> int:
    from reviewer.jobs import run_with_progress_bar
    from reviewer.studies.simulate import SimSettings, simulate_readers

    settings = SimSettings(_per_condition(args.sensitivity, 0.7, "sensitivity"),
                           _per_condition(args.false_marks_per_case, 0.3, "false-marks-per-case"), args.separation)
    with _open(args) as store:
        for cond in store.definition.conditions:
            for v, what in ((settings.sensitivity, "sensitivity"), (settings.false_marks_per_case, "false marks")):
                if isinstance(v, dict) and cond not in v and "*" not in v:
                    print(f"error: no {what} for condition {cond!r}", file=sys.stderr)
                    return 2
        if args.power:
            from reviewer.studies.simulate import estimate_power

            if store.definition.compared_conditions() is None:
                print("error: --power needs a study with two conditions to compare", file=sys.stderr)
                return 2
            r = run_with_progress_bar(estimate_power, store.definition, store.study_dir, args.readers, args.power,
                                      seed=args.seed, settings=settings, n_bootstrap=args.bootstrap,
                                      alpha=args.alpha, fom=args.fom, label="power")
            print(f"{r['n_trials']} simulated studies of {r['n_readers']} readers x {len(store.definition.cases)} "
                  f"cases: {r['fom']} {r['b']!r} - {r['a']!r} = {r['mean_difference']:+.3f} on average; power "
                  f"(p < {r['alpha']:g}) = {r['power']:.2f}")
            return 0
        ids = run_with_progress_bar(simulate_readers, store, args.readers, seed=args.seed, settings=settings,
                                    prefix=args.prefix, label="simulated reading")
        prog = {p.reader_id: p for p in store.progress()}
        print(f"{len(ids)} simulated readers read {store.definition.name!r}: "
              + ", ".join(f"{i} {prog[i].n_submitted}/{prog[i].n_cases}" for i in ids))
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from reviewer.jobs import run_with_progress_bar
    from reviewer.studies.analysis import analyze_study, format_analysis, write_json, write_plots

    with _open(args) as store:
        results = store.results(include_simulated=not args.humans_only)
        if not results:
            print("error: no submitted reads yet", file=sys.stderr)
            return 2
        a = run_with_progress_bar(analyze_study, store.definition, results, n_bootstrap=args.bootstrap,
                                  seed=args.seed, label="analysis")
        print(format_analysis(a))
        if args.json:
            print(f"wrote {write_json(a, args.json)}")
        if args.out:
            files = write_plots(store.definition, a, args.out)
            files.append(write_json(a, Path(args.out) / "analysis.json"))
            print("wrote " + ", ".join(str(f) for f in files))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from reviewer.studies.exports import export_study_file

    with _open(args) as store:
        files = export_study_file(store, args.format, args.out, include_simulated=not args.humans_only)
        n = len(store.results(include_simulated=not args.humans_only))
    print(f"wrote {', '.join(str(f) for f in files)} ({n} submitted reads)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    with _open(args) as store:
        d = store.definition
        print(f"study {d.name!r}: {len(d.cases)} cases x {len(d.conditions)} conditions = {len(d.items())} items, "
              f"paradigm {d.paradigm}, store {store.url.split('@')[-1]} (schema v{store.schema_version()})")
        for p in store.progress():
            state = "finished" if p.finished else ("paused" if p.paused else ("reading" if p.n_cases else "not started"))
            print(f"  {p.reader_id:<14}{'(simulated) ' if p.simulated else '':<12}{p.n_submitted:>4}/{p.n_cases or len(d.items()):<4}"
                  f" {state:<12} active {p.active_s:8.1f} s")
        check = store.integrity_check()
        print("integrity: " + ("ok" if check == ["ok"] else "; ".join(check)))
        return 0 if check == ["ok"] else 1


def _cmd_read(args: argparse.Namespace) -> int:
    from reviewer.gui.reading.app import run_reading  # Qt only here: reviewer.studies stays headless

    return run_reading(args.study, args.reader, url=args.db, full_screen=not args.windowed,
                       screenshot=args.screenshot)
