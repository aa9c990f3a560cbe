"""Transfer-experiment settings and the transfer stage's options (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrfast.stages import option, overwrite_option, progress_option


@dataclass(frozen=True)
class TransferOptions:
    seed: int = option("random seed of the probes and the zero-shot sampling", 0)
    device: str = option("torch device for the frozen models", "cpu")


@dataclass
class TransferStageOptions:
    """``ehrfast transfer``: the arguments of ``ehrfast.transfer.run_transfer``."""

    tokens_dir: Path = option("tokenize output directory (train/ and held_out/ splits)", role="input", positional=True,
                              metavar="TOKENS_DIR")
    meds_dir: Path = option("the MEDS dataset the tokens came from (labels are made from it)", role="input", flag="--meds")
    ehr_model: Path = option("checkpoint of the EHR-only model (its frozen backbone gets the stroke head)", role="input",
                             flag="--ehr-model")
    prs_model: Path = option("checkpoint of a model that reads PRS (its encoder gives the COPD embeddings)", role="input",
                             flag="--prs-model")
    prs_path: Path = option("PRS.parquet from `ehrfast prs`, or pgsc_calc aggregated_scores.txt.gz", role="input", flag="--prs")
    out_dir: Path = option("output directory: labels, predictions and report/", role="output_dir", flag="--out")
    options: TransferOptions = option("transfer settings", default_factory=TransferOptions)
    overwrite: bool = overwrite_option("the output directory")
    progress: bool = progress_option()
