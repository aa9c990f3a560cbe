"""The pipeline's stages, in pipeline order: one command, one options dataclass and one public
function each (``ehrfast.stages.Stage``). The CLI builds its subcommands from this list and the
demo runs these same stages, so a command, its demo step and its API function cannot drift."""

from __future__ import annotations

from ehrfast.baselines.options import BaselinesStageOptions
from ehrfast.data.options import ValidateOptions
from ehrfast.evaluate.options import EvaluateStageOptions
from ehrfast.genomics.options import PRSStageOptions
from ehrfast.infer.ares.options import AresStageOptions, NextTokenStageOptions
from ehrfast.infer.options import ScoreStageOptions
from ehrfast.labels.options import LabelOptions
from ehrfast.model.options import ExportHFOptions
from ehrfast.stages import Stage
from ehrfast.synth.config import SynthOptions
from ehrfast.tokenize.options import TokenizeOptions
from ehrfast.train.config import TrainOptions
from ehrfast.transfer.options import TransferStageOptions

SYNTH = Stage("synth", "generate a synthetic cohort (MEDS + genotypes + score files + ground truth)", SynthOptions,
              "ehrfast.synth.generator:generate_cohort")
VALIDATE = Stage("validate", "validate a MEDS dataset (schema, sort order, metadata)", ValidateOptions,
                 "ehrfast.data.meds:validate_meds_dataset")
PRS = Stage("prs", "polygenic risk scores: match score files to genotypes and score every trait", PRSStageOptions,
            "ehrfast.genomics.prs:compute_prs")
TOKENIZE = Stage("tokenize", "MEDS -> token timelines (fit on train, apply to every split)", TokenizeOptions,
                 "ehrfast.tokenize.api:tokenize_dataset")
TRAIN = Stage("train", "train a GPT on a tokenized dataset (EHR only, or EHR + PRS)", TrainOptions, "ehrfast.train.loop:train",
              description="Under torchrun (torchrun --nproc_per_node K -m ehrfast.cli train ...) every rank trains a DDP replica "
                          "on a disjoint shard of the training subjects.")
LABEL = Stage("label", "labels (MEDS label schema) for an incidence task or an ETHOS-ARES event task, without ACES", LabelOptions,
              "ehrfast.labels.make:make_labels")
SCORE = Stage("score", "zero-shot risk by sampling futures (path probabilities + Monte-Carlo)", ScoreStageOptions,
              "ehrfast.infer.score:score_cohort",
              description="Under torchrun (torchrun --nproc_per_node K -m ehrfast.cli score ...) the labelled subjects are split "
                          "over the ranks; rank 0 writes the predictions.")
ARES = Stage("ares", "ETHOS-ARES risk trajectories over hospital stays, with explanations, figures and an HTML page", AresStageOptions,
             "ehrfast.infer.ares.run:run_ares",
             description="For every stay of an anchored label file (ehrfast label --task hospital_mortality): death, ICU admission, "
                         "prolonged stay and the composite re-estimated at every position of the stay by sampling futures.")
NEXT_TOKEN = Stage("next-token", "DRG / SOFA as exact next-token readouts (softmax over the candidate tokens)", NextTokenStageOptions,
                   "ehrfast.infer.ares.run:run_next_token")
BASELINES = Stage("baselines", "early-warning scores (NEWS, NEWS2, MEWS, REMS, CART, ESI) and tabular models for a task's label rows",
                  BaselinesStageOptions, "ehrfast.baselines.run:run_baselines",
                  description="The ETHOS-ARES paper's comparison methods, as the MIMIC-IV-ED benchmark computes them; one column per "
                              "method (higher = riskier) for ehrfast evaluate --methods.")
EVALUATE = Stage("evaluate", "compare model A with model B: paired bootstrap, meta-analysis, plots, report", EvaluateStageOptions,
                 "ehrfast.evaluate.compare:evaluate")
EXPORT_HF = Stage("export-hf", "export a checkpoint as a Hugging Face GPT-2 directory (model, tokenizer, PRS encoder)", ExportHFOptions,
                  "ehrfast.model.hf_export:export_hf",
                  description="transformers.GPT2LMHeadModel.from_pretrained(OUT) gives the checkpoint's logits (cross-attention "
                              "models: add_cross_attention=True, the PRS soft tokens as encoder_hidden_states); "
                              "AutoTokenizer.from_pretrained(OUT) reads the vocabulary.")
TRANSFER = Stage("transfer", "transfer learning: a head on the frozen EHR model, PRS-encoder embeddings as features",
                 TransferStageOptions, "ehrfast.transfer.experiment:run_transfer")

STAGES: tuple[Stage, ...] = (SYNTH, VALIDATE, PRS, TOKENIZE, TRAIN, LABEL, SCORE, ARES, NEXT_TOKEN, BASELINES, EVALUATE, TRANSFER, EXPORT_HF)

__all__ = ["ARES", "BASELINES", "EVALUATE", "EXPORT_HF", "NEXT_TOKEN", "LABEL", "PRS", "SCORE", "STAGES", "SYNTH", "TOKENIZE", "TRAIN", "TRANSFER", "VALIDATE"]
