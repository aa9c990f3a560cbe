"""Charlson and Elixhauser comorbidity flags from ICD-10 diagnosis codes: the enhanced ICD-10
coding algorithms of Quan et al. (Med Care 2005;43:1130–9), as the MIMIC-IV-ED benchmark's
``cci_*`` (17) and ``eci_*`` (31) features. A code (without its dot) carries a comorbidity when it
starts with one of the category's prefixes; "I60-I69" is every prefix from I60 to I69.

ICD-9 codes are not mapped here (the benchmark converts them first; ehrfast's ICD-9 → 10 map
belongs to the ETHOS tokenization rules): they contribute no flag.
"""

from __future__ import annotations

import re

import numpy as np

_DM_NO_CC = [f"{p}{d}" for p in ("E10", "E11", "E12", "E13", "E14") for d in "01689"]
_DM_CC = [f"{p}{d}" for p in ("E10", "E11", "E12", "E13", "E14") for d in "23457"]

CHARLSON = {
    "myocardial_infarction": ["I21", "I22", "I252"],
    "congestive_heart_failure": ["I099", "I110", "I130", "I132", "I255", "I420", "I425-I429", "I43", "I50", "P290"],
    "peripheral_vascular": ["I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792", "K551", "K558", "K559", "Z958", "Z959"],
    "cerebrovascular": ["G45", "G46", "H340", "I60-I69"],
    "dementia": ["F00-F03", "F051", "G30", "G311"],
    "chronic_pulmonary": ["I278", "I279", "J40-J47", "J60-J67", "J684", "J701", "J703"],
    "rheumatic": ["M05", "M06", "M315", "M32-M34", "M351", "M353", "M360"],
    "peptic_ulcer": ["K25-K28"],
    "mild_liver": ["B18", "K700-K703", "K709", "K713-K715", "K717", "K73", "K74", "K760", "K762-K764", "K768", "K769", "Z944"],
    "diabetes_without_complication": _DM_NO_CC,
    "diabetes_with_complication": _DM_CC,
    "paraplegia_hemiplegia": ["G041", "G114", "G801", "G802", "G81", "G82", "G830-G834", "G839"],
    "renal": ["I120", "I131", "N032-N037", "N052-N057", "N18", "N19", "N250", "Z490-Z492", "Z940", "Z992"],
    "malignancy": ["C00-C26", "C30-C34", "C37-C41", "C43", "C45-C58", "C60-C76", "C81-C85", "C88", "C90-C97"],
    "severe_liver": ["I850", "I859", "I864", "I982", "K704", "K711", "K721", "K729", "K765", "K766", "K767"],
    "metastatic_solid_tumor": ["C77-C80"],
    "aids_hiv": ["B20-B22", "B24"],
}

ELIXHAUSER = {
    "congestive_heart_failure": ["I099", "I110", "I130", "I132", "I255", "I420", "I425-I429", "I43", "I50", "P290"],
    "cardiac_arrhythmias": ["I441-I443", "I456", "I459", "I47-I49", "R000", "R001", "R008", "T821", "Z450", "Z950"],
    "valvular_disease": ["A520", "I05-I08", "I091", "I098", "I34-I39", "Q230-Q233", "Z952-Z954"],
    "pulmonary_circulation": ["I26", "I27", "I280", "I288", "I289"],
    "peripheral_vascular": ["I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792", "K551", "K558", "K559", "Z958", "Z959"],
    "hypertension_uncomplicated": ["I10"],
    "hypertension_complicated": ["I11-I13", "I15"],
    "paralysis": ["G041", "G114", "G801", "G802", "G81", "G82", "G830-G834", "G839"],
    "other_neurological": ["G10-G13", "G20-G22", "G254", "G255", "G312", "G318", "G319", "G32", "G35-G37", "G40", "G41", "G931", "G934",
                           "R470", "R56"],
    "chronic_pulmonary": ["I278", "I279", "J40-J47", "J60-J67", "J684", "J701", "J703"],
    "diabetes_uncomplicated": [f"{p}{d}" for p in ("E10", "E11", "E12", "E13", "E14") for d in "019"],
    "diabetes_complicated": [f"{p}{d}" for p in ("E10", "E11", "E12", "E13", "E14") for d in "2345678"],
    "hypothyroidism": ["E00-E03", "E890"],
    "renal_failure": ["I120", "I131", "N18", "N19", "N250", "Z490-Z492", "Z940", "Z992"],
    "liver_disease": ["B18", "I85", "I864", "I982", "K70", "K711", "K713-K715", "K717", "K72-K74", "K760", "K762-K769", "Z944"],
    "peptic_ulcer_no_bleeding": ["K257", "K259", "K267", "K269", "K277", "K279", "K287", "K289"],
    "aids_hiv": ["B20-B22", "B24"],
    "lymphoma": ["C81-C85", "C88", "C96", "C900", "C902"],
    "metastatic_cancer": ["C77-C80"],
    "solid_tumor_no_metastasis": ["C00-C26", "C30-C34", "C37-C41", "C43", "C45-C58", "C60-C76", "C97"],
    "rheumatoid_arthritis": ["L940", "L941", "L943", "M05", "M06", "M08", "M120", "M123", "M30", "M310-M313", "M32-M35", "M45", "M461",
                             "M468", "M469"],
    "coagulopathy": ["D65-D68", "D691", "D693-D696"],
    "obesity": ["E66"],
    "weight_loss": ["E40-E46", "R634", "R64"],
    "fluid_electrolyte": ["E222", "E86", "E87"],
    "blood_loss_anemia": ["D500"],
    "deficiency_anemia": ["D508", "D509", "D51-D53"],
    "alcohol_abuse": ["F10", "E52", "G621", "I426", "K292", "K700", "K703", "K709", "T51", "Z502", "Z714", "Z721"],
    "drug_abuse": ["F11-F16", "F18", "F19", "Z715", "Z722"],
    "psychoses": ["F20", "F22-F25", "F28", "F29", "F302", "F312", "F315"],
    "depression": ["F204", "F313-F315", "F32", "F33", "F341", "F412", "F432"],
}

FLAG_NAMES = tuple([f"cci_{k}" for k in CHARLSON] + [f"eci_{k}" for k in ELIXHAUSER])


def expand(spec: str) -> list[str]:
    """"I60-I69" -> ["I60", …, "I69"]; a single prefix stays itself."""
    if "-" not in spec:
        return [spec]
    a, b = spec.split("-")
    ma, mb = re.fullmatch(r"([A-Z]+)(\d+)", a), re.fullmatch(r"([A-Z]+)(\d+)", b)
    if not ma or not mb or ma.group(1) != mb.group(1) or len(ma.group(2)) != len(mb.group(2)):
        raise ValueError(f"bad ICD range {spec!r}")
    width = len(ma.group(2))
    return [f"{ma.group(1)}{n:0{width}d}" for n in range(int(ma.group(2)), int(mb.group(2)) + 1)]


_PREFIXES = [tuple(p for spec in specs for p in expand(spec)) for specs in (*CHARLSON.values(), *ELIXHAUSER.values())]


def comorbidity_flags(icd10_codes: list[str]) -> np.ndarray:
    """[len(codes), len(FLAG_NAMES)] bool: which comorbidities each ICD-10 code (dots allowed)
    carries."""
    out = np.zeros((len(icd10_codes), len(FLAG_NAMES)), bool)
    for i, code in enumerate(icd10_codes):
        c = code.replace(".", "").upper()
        for j, prefixes in enumerate(_PREFIXES):
            out[i, j] = c.startswith(prefixes)
    return out
