"""``ehrfast <command>``: a thin shell over the public Python API.

Each command parses its arguments, calls one public function, and prints what it returned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from ehrfast import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    yes = {True: "yes", False: "no"}
    print(f"ehrfast {info['version']}")
    print(f"  C++ core (ehrfast._core):      {'built' if info['cpp_core'] else 'NOT built: ' + str(info['core_error'])}")
    print(f"  C++ core OpenMP:               {yes[info['cpp_openmp']]}")
    print(f"  CUDA kernels (ehrfast._cuda):  {'built' if info['cuda_kernels'] else 'not built'}")
    print(f"  Triton importable:             {yes[info['triton']]}")
    print(f"  torch:                         {info['torch'] or 'not installed'}")
    print(f"  GPU visible:                   {info['gpu'] or 'none'}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from ehrfast.data.synthetic import SyntheticConfig, generate_cohort

    # Score files hold up to 1,200 variants (300 causal); fewer on small panels.
    score_variants = min(1_200, max(4, args.variants // 2))
    cfg = SyntheticConfig(
        n_subjects=args.subjects,
        seed=args.seed,
        n_variants=args.variants,
        n_null_traits=args.null_traits,
        causal_variants=min(300, score_variants // 4),
        score_variants=score_variants,
        shard_size=args.shard_size,
    )
    summary = generate_cohort(args.out, cfg, overwrite=args.overwrite, progress=not args.quiet)
    _print_cohort(summary)
    return 0


def _print_cohort(summary) -> None:
    r = summary.rows_per_subject
    print(f"synthetic cohort written to {summary.out_dir} in {summary.seconds:.1f} s")
    print(f"  subjects {summary.n_subjects:,}  rows {summary.n_rows:,}  codes {summary.n_codes}  deaths {summary.deaths:,}")
    print(f"  rows/subject: min {r['min']}  median {r['median']:.0f}  mean {r['mean']}  p99 {r['p99']:.0f}  max {r['max']}")
    print(f"  genotypes: {summary.n_genotyped:,} samples x {summary.n_variants:,} variants; {summary.n_traits} score files")
    print("  10-year incidence from record start / ever diagnosed / corr(PRS, true liability):")
    for d, inc in summary.incidence_10y_at_start.items():
        print(f"    {d:<14} {inc:7.2%}  {summary.prevalence_at_end[d]:7.2%}  {summary.prs_liability_correlation[d]:.3f}")


def _cmd_validate(args: argparse.Namespace) -> int:
    from ehrfast.data.meds import validate_meds_dataset

    s = validate_meds_dataset(args.meds_dir)
    print(f"{args.meds_dir}: valid MEDS — {s.n_subjects:,} subjects, {s.n_rows:,} rows, {s.n_codes:,} codes")
    for split, rows in s.rows_per_split.items():
        print(f"  {split:<10} {s.subjects_per_split[split]:>9,} subjects {rows:>12,} rows")
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from ehrfast.tokenize import TokenizerConfig, tokenize_dataset

    config = TokenizerConfig.load(args.config) if args.config else None
    s = tokenize_dataset(args.meds_dir, args.out_dir, config, backend=args.backend, vocab_from=args.vocab,
                         overwrite=args.overwrite, progress=not args.quiet)
    print(f"tokenized {args.meds_dir} -> {s.out_dir} in {s.seconds:.1f} s ({s.backend} backend); vocabulary {s.vocab_size:,} tokens")
    for split, d in s.splits.items():
        f = d["filtered"]
        print(f"  {split:<10} {d['subjects']:>9,} subjects {d['tokens']:>13,} tokens  (dropped: {f['too_few_events']} too few, {f['too_many_events']} too many events)")
    return 0


def _cmd_prs(args: argparse.Namespace) -> int:
    from ehrfast.genomics.match import MatchOptions
    from ehrfast.genomics.prs import PRSOptions, compute_prs
    from ehrfast.genomics.score import ScoreModel

    options = PRSOptions(
        max_variants=None if args.max_variants <= 0 else args.max_variants,
        model=ScoreModel(model=args.model, mean_impute=not args.no_mean_imputation, center=args.center,
                         variance_standardize=args.variance_standardize, plink2_center_quirk=args.plink2_center_quirk),
        match=MatchOptions(keep_ambiguous=args.keep_ambiguous, keep_multiallelic=args.keep_multiallelic, min_overlap=args.min_overlap),
        clip_sd=args.clip,
        raw=args.raw,
    )
    genotype_options = {"ref_first": False} if args.bgen_ref_last else None
    s = compute_prs(args.genotypes, args.scores, args.out, options, backend=args.backend, sample_map=args.sample_map,
                    meds_dir=args.meds, genotype_options=genotype_options, overwrite=args.overwrite, progress=not args.quiet)
    print(f"PRS for {len(s.traits)} traits x {s.n_samples:,} samples ({s.n_subjects_mapped:,} mapped to subjects) -> {s.out_path} in {s.seconds:.1f} s [{s.backend}]")
    if s.dropped_traits:
        print(f"  dropped (match rate below the minimum): {', '.join(s.dropped_traits)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ehrfast.train import TrainConfig, train

    cfg = TrainConfig(preset=args.preset, modality=args.modality, steps=args.steps, batch_size=args.batch_size,
                      seq_len=args.seq_len, lr=args.lr, seed=args.seed, device=args.device, missing_prs=args.missing_prs,
                      eval_every=max(1, args.steps // 5))
    hist = train(args.data, args.out, cfg, prs_path=args.prs, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    vals = ", ".join(f"step {s}: {v:.3f}" for s, v in hist["val_loss"])
    print(f"trained {args.preset} ({args.modality}) for {args.steps} steps -> {args.out}/model; validation loss {vals}")
    if "tokens_per_second" in hist:
        print(f"  {hist['tokens_per_second']:,.0f} real tokens/s on {args.device}")
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    from ehrfast.infer.labels import make_labels
    from ehrfast.infer.task import Task

    task = Task.load(args.task)
    counts = make_labels(args.meds_dir, task, args.out, tuple(args.splits) if args.splits else None, overwrite=args.overwrite)
    print(f"labels for {task.name} -> {args.out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from ehrfast.infer.score import score_cohort
    from ehrfast.infer.task import Task

    task = Task.load(args.task)
    s = score_cohort(args.checkpoint, args.data, args.labels, task, args.out, meds_dir=args.meds, prs_path=args.prs, seed=args.seed,
                     device=args.device, strict_copy=args.strict, trajectories_path=args.trajectories, overwrite=args.overwrite,
                     progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        print(f"scored {s['subjects']:,} subjects for {s['task']} ({s['targets_matched']} target tokens) -> {args.out} in "
              f"{s['seconds']:.1f} s on {s['ranks']} rank(s); {s['tokens_generated']:,} tokens generated")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ehrfast.evaluate import evaluate

    files = args.predictions
    if len(files) % 2:
        raise ValueError(f"predictions come in pairs (A B [A B ...]); got {len(files)} files")
    pairs = list(zip(files[0::2], files[1::2]))
    results = evaluate(
        pairs,
        args.out,
        names=args.names,
        model_names=tuple(args.model_names),
        score_column=args.score_column,
        iterations=args.iterations,
        seed=args.seed,
        threshold_rule=args.threshold,
        fixed_threshold=args.fixed_threshold,
        prs_path=args.prs,
        traits=args.traits,
        subgroups_path=args.subgroups,
        subgroup_columns=tuple(args.subgroup_columns or ()),
        loss_column=args.loss_column,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    for name, t in results["tasks"].items():
        d = t["bootstrap"]["deltas"]["auroc"]
        p = f"< {t['bootstrap']['p_floor']:.1e}" if d["p_at_floor"] else f"= {d['p_value']:.4f}"
        print(f"{name}: AUROC A {d['value_a']:.4f}  B {d['value_b']:.4f}  Δ {d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]  p {p}")
    if "meta_analysis" in results:
        m = results["meta_analysis"]
        pooled = m[m["emphasized"]]
        print(f"meta-analysis ({m['emphasized']} effects): pooled Δ AUROC {pooled['estimate']:+.4f} [{pooled['ci_low']:+.4f}, {pooled['ci_high']:+.4f}]  p = {pooled['p_value']:.3g}")
    print(f"report: {args.out}/report.md, {args.out}/report.html, {args.out}/results.json")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ehrfast.pipeline import run_demo

    run_demo(args.out, n_subjects=args.subjects, seed=args.seed, force=args.force, train_steps=args.train_steps)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ehrfast",
        description="Generative EHR foundation models with genomics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="show which compiled backends and accelerators are available")
    p.add_argument("--json", action="store_true", help="print build_info() as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("synth", help="generate a synthetic cohort (MEDS + genotypes + score files + truth)")
    p.add_argument("--subjects", type=int, default=10_000, help="number of subjects (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output directory (must not exist unless --overwrite)")
    p.add_argument("--variants", type=int, default=8_000, help="genotyped variants (default 8,000)")
    p.add_argument("--null-traits", type=int, default=200, help="score files with no effect (default 200)")
    p.add_argument("--shard-size", type=int, default=20_000, help="subjects per MEDS shard (default 20,000)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("validate", help="validate a MEDS dataset (schema, sort order, metadata)")
    p.add_argument("meds_dir")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("tokenize", help="MEDS -> token timelines (fit on train, apply to every split)")
    p.add_argument("meds_dir")
    p.add_argument("out_dir")
    p.add_argument("--config", help="tokenizer config JSON (a TokenizerConfig, or a saved tokenizer.json)")
    p.add_argument("--backend", choices=["cpp", "python"], help="force a backend (default: C++ if built)")
    p.add_argument("--vocab", metavar="FROM_DIR", help="reuse the tokenizer fitted in FROM_DIR instead of fitting")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_tokenize)

    p = sub.add_parser("prs", help="polygenic risk scores: match score files to genotypes and score every trait")
    p.add_argument("--genotypes", required=True, help="PLINK prefix (.bed or .pgen), VCF/BCF, or BGEN")
    p.add_argument("--bgen-ref-last", action="store_true", help="BGEN stores ALT first (plink2 'ref-last'); default: REF first")
    p.add_argument("--scores", nargs="+", required=True, help="PGS Catalog scoring files or ID/effect_allele/weight tables")
    p.add_argument("--out", required=True, help="output parquet (prs_meta.json is written beside it)")
    p.add_argument("--max-variants", type=int, default=1500, help="per trait, by |weight| after matching (0 = all)")
    p.add_argument("--raw", action="store_true", help="write unstandardized sums")
    p.add_argument("--backend", choices=["cpp", "python"])
    p.add_argument("--model", choices=["additive", "dominant", "recessive"], default="additive")
    p.add_argument("--no-mean-imputation", action="store_true", help="missing calls contribute 0 (plink2 no-mean-imputation)")
    p.add_argument("--center", action="store_true")
    p.add_argument("--variance-standardize", action="store_true")
    p.add_argument("--plink2-center-quirk", action="store_true", help="reproduce plink2: a missing call adds the uncentred mean in center/variance-standardize modes")
    p.add_argument("--keep-ambiguous", action="store_true", help="keep strand-ambiguous A/T and C/G variants")
    p.add_argument("--keep-multiallelic", action="store_true")
    p.add_argument("--min-overlap", type=float, default=0.75, help="drop traits whose match rate is lower (default 0.75)")
    p.add_argument("--clip", type=float, default=4.0, help="clip standardized scores at ±k sd (default 4)")
    p.add_argument("--sample-map", help="TSV: sample_id subject_id (when IIDs are not MEDS subject ids)")
    p.add_argument("--meds", help="MEDS dataset: check ids and fit the standardization on its train split")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_prs)

    p = sub.add_parser("train", help="train a GPT on a tokenized dataset (EHR only, or EHR + PRS)")
    p.add_argument("data", help="tokenize output directory (train/ and tuning/ splits)")
    p.add_argument("--out", required=True, help="output directory: model/ (checkpoint), last/ (resumable), history.json")
    p.add_argument("--prs", help="PRS.parquet from `ehrfast prs` (needed for modality cross/prefix)")
    p.add_argument("--modality", choices=["none", "cross", "prefix"], default="cross")
    p.add_argument("--preset", choices=["tiny", "demo", "paper"], default="demo")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--missing-prs", choices=["embedding", "exclude"], default="embedding",
                   help="subjects without PRS: a learned 'missing' vector, or left out of training")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an existing run directory OUT")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("label", help="incidence labels (MEDS label schema) for a task, without ACES")
    p.add_argument("meds_dir")
    p.add_argument("--task", required=True, help="task YAML/JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--splits", nargs="+", help="only these splits (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("score", help="zero-shot risk by sampling futures (path probabilities + Monte-Carlo)")
    p.add_argument("checkpoint", help="checkpoint directory (e.g. RUN/model)")
    p.add_argument("data", help="one split of a tokenize output (e.g. TOKENS/held_out)")
    p.add_argument("labels", help="label parquet (subject_id, prediction_time, boolean_value)")
    p.add_argument("--task", required=True, help="task YAML/JSON")
    p.add_argument("--out", required=True, help="predictions parquet")
    p.add_argument("--meds", help="MEDS dataset (for code descriptions in task patterns)")
    p.add_argument("--prs", help="PRS.parquet for PRS models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--strict", action="store_true", help="also write a copy with only meds-evaluation's columns")
    p.add_argument("--trajectories", help="also write the sampled futures here (parquet: one row per generated token)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("evaluate", help="compare model A with model B: paired bootstrap, meta-analysis, plots, report")
    p.add_argument("predictions", nargs="+", metavar="PRED", help="prediction files in pairs: A B [A B ...] (one pair per task)")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--names", nargs="+", help="task names, one per pair (default: file names of B)")
    p.add_argument("--model-names", nargs=2, default=["A", "B"], metavar=("A", "B"))
    p.add_argument("--iterations", type=int, default=2000, help="bootstrap iterations (default 2,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score-column", default="predicted_boolean_probability")
    p.add_argument("--threshold", choices=["fixed", "youden", "closest"], default="fixed", help="threshold rule for thresholded metrics")
    p.add_argument("--fixed-threshold", type=float, default=0.5)
    p.add_argument("--prs", help="PRS parquet (subject_id + trait columns) for the Spearman analysis")
    p.add_argument("--traits", nargs="+", help="PRS trait columns to correlate with P(B) − P(A)")
    p.add_argument("--subgroups", help="parquet with subject_id and demographic columns")
    p.add_argument("--subgroup-columns", nargs="+", help="columns of --subgroups to break AUROC down by")
    p.add_argument("--loss-column", help="per-subject test-loss column present in both files: paired t / Wilcoxon tests")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("demo", help="run the pipeline end to end on a fresh synthetic cohort")
    p.add_argument("--out", default="ehrfast_demo", help="output directory (default ./ehrfast_demo)")
    p.add_argument("--subjects", type=int, default=5_000, help="cohort size (default 5,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rerun stages that already finished")
    p.add_argument("--train-steps", type=int, help="training steps per model (default 2,000)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        from ehrfast.train import distributed

        distributed.mark_failed()
        print(f"ehrfast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
