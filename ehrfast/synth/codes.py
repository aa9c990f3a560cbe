"""The synthetic cohort's clinical vocabulary: codes, descriptions, and which disease they mark.

Code names follow the MIMIC-IV MEDS ETL conventions (``DIAGNOSIS//ICD//10//E119``,
``LAB//<id>//<unit>``) so task patterns written for real MEDS data work here too.
"""

from __future__ import annotations

from dataclasses import dataclass

# The six diseases with a genetic liability; each has a score file and a ground-truth risk.
DISEASES = ("T2D", "CAD", "DEPRESSION", "SCHIZOPHRENIA", "COPD", "STROKE")
# Conditions derived from latent state (no own liability), recorded like diagnoses.
COMORBIDITIES = ("PREDIABETES", "HYPERTENSION", "HYPERLIPIDEMIA", "OBESITY")

DISEASE_TRAIT_NAMES = {
    "T2D": "Type 2 diabetes",
    "CAD": "Coronary artery disease",
    "DEPRESSION": "Major depressive disorder",
    "SCHIZOPHRENIA": "Schizophrenia",
    "COPD": "Chronic obstructive pulmonary disease",
    "STROKE": "Ischemic stroke",
}

# condition -> [(code, description, share of diagnoses recorded with this code)]
DIAGNOSIS_CODES: dict[str, list[tuple[str, str, float]]] = {
    "T2D": [
        ("DIAGNOSIS//ICD//10//E119", "Type 2 diabetes mellitus without complications", 0.6),
        ("DIAGNOSIS//ICD//10//E1165", "Type 2 diabetes mellitus with hyperglycemia", 0.2),
        ("DIAGNOSIS//ICD//10//E1122", "Type 2 diabetes mellitus with diabetic chronic kidney disease", 0.1),
        ("DIAGNOSIS//ICD//10//E1140", "Type 2 diabetes mellitus with diabetic neuropathy, unspecified", 0.1),
    ],
    "CAD": [
        ("DIAGNOSIS//ICD//10//I2510", "Atherosclerotic heart disease of native coronary artery without angina pectoris", 0.8),
        ("DIAGNOSIS//ICD//10//I219", "Acute myocardial infarction, unspecified", 0.2),
    ],
    "DEPRESSION": [
        ("DIAGNOSIS//ICD//10//F329", "Major depressive disorder, single episode, unspecified", 0.7),
        ("DIAGNOSIS//ICD//10//F331", "Major depressive disorder, recurrent, moderate", 0.3),
    ],
    "SCHIZOPHRENIA": [
        ("DIAGNOSIS//ICD//10//F209", "Schizophrenia, unspecified", 0.8),
        ("DIAGNOSIS//ICD//10//F200", "Paranoid schizophrenia", 0.2),
    ],
    "COPD": [
        ("DIAGNOSIS//ICD//10//J449", "Chronic obstructive pulmonary disease, unspecified", 0.8),
        ("DIAGNOSIS//ICD//10//J441", "Chronic obstructive pulmonary disease with (acute) exacerbation", 0.2),
    ],
    "STROKE": [
        ("DIAGNOSIS//ICD//10//I639", "Cerebral infarction, unspecified", 0.85),
        ("DIAGNOSIS//ICD//10//I619", "Nontraumatic intracerebral hemorrhage, unspecified", 0.15),
    ],
    "PREDIABETES": [("DIAGNOSIS//ICD//10//R7303", "Prediabetes", 1.0)],
    "HYPERTENSION": [("DIAGNOSIS//ICD//10//I10", "Essential (primary) hypertension", 1.0)],
    "HYPERLIPIDEMIA": [("DIAGNOSIS//ICD//10//E785", "Hyperlipidemia, unspecified", 1.0)],
    "OBESITY": [("DIAGNOSIS//ICD//10//E669", "Obesity, unspecified", 1.0)],
}

# A decoy that matches "diab" but not "type 2": task patterns must tell them apart.
DECOY_CODES = [("DIAGNOSIS//ICD//10//E109", "Type 1 diabetes mellitus without complications")]

# condition -> [(code, description)] prescribed while the condition is active
MEDICATION_CODES: dict[str, list[tuple[str, str]]] = {
    "T2D": [("MEDICATION//ATC//A10BA02", "Metformin"), ("MEDICATION//ATC//A10AE04", "Insulin glargine")],
    "CAD": [("MEDICATION//ATC//B01AC06", "Acetylsalicylic acid (aspirin)"), ("MEDICATION//ATC//C07AB07", "Bisoprolol")],
    "DEPRESSION": [("MEDICATION//ATC//N06AB06", "Sertraline")],
    "SCHIZOPHRENIA": [("MEDICATION//ATC//N05AH04", "Quetiapine"), ("MEDICATION//ATC//N05AX08", "Risperidone")],
    "COPD": [("MEDICATION//ATC//R03AK06", "Salmeterol and fluticasone inhaler")],
    "STROKE": [("MEDICATION//ATC//B01AC04", "Clopidogrel")],
    "HYPERTENSION": [("MEDICATION//ATC//C09AA05", "Ramipril"), ("MEDICATION//ATC//C08CA01", "Amlodipine")],
    "HYPERLIPIDEMIA": [("MEDICATION//ATC//C10AA05", "Atorvastatin")],
}


@dataclass(frozen=True)
class Measurement:
    """A lab or vital sign: code, description, and rounding of its value."""

    key: str
    code: str
    description: str
    decimals: int


MEASUREMENTS = {
    m.key: m
    for m in [
        Measurement("HBA1C", "LAB//4548-4//%", "Hemoglobin A1c/Hemoglobin.total in Blood", 1),
        Measurement("GLUCOSE", "LAB//2345-7//mg/dL", "Glucose [Mass/volume] in Serum or Plasma", 0),
        Measurement("LDL", "LAB//13457-7//mg/dL", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", 0),
        Measurement("CREATININE", "LAB//2160-0//mg/dL", "Creatinine [Mass/volume] in Serum or Plasma", 2),
        Measurement("HEMOGLOBIN", "LAB//718-7//g/dL", "Hemoglobin [Mass/volume] in Blood", 1),
        Measurement("SODIUM", "LAB//2951-2//mmol/L", "Sodium [Moles/volume] in Serum or Plasma", 0),
        Measurement("POTASSIUM", "LAB//2823-3//mmol/L", "Potassium [Moles/volume] in Serum or Plasma", 1),
        Measurement("WBC", "LAB//6690-2//10*3/uL", "Leukocytes [#/volume] in Blood", 1),
        Measurement("BMI", "VITAL//BMI//kg/m2", "Body mass index (BMI) [Ratio]", 1),
        Measurement("SBP", "VITAL//SBP//mmHg", "Systolic blood pressure", 0),
    ]
}

VISIT_TYPES = ("OUTPATIENT", "EMERGENCY", "INPATIENT")
VISIT_START = {v: (f"VISIT_START//{v}", f"Start of {v.lower()} visit") for v in VISIT_TYPES}
VISIT_END = {v: (f"VISIT_END//{v}", f"End of {v.lower()} visit") for v in VISIT_TYPES}

SEX_CODES = [("GENDER//F", "Female"), ("GENDER//M", "Male")]
RACES = ("WHITE", "BLACK", "ASIAN", "HISPANIC/LATINO", "OTHER")
RACE_SHARES = (0.60, 0.13, 0.06, 0.18, 0.03)
SMOKING_CODES = [
    ("SOCIAL//SMOKING//NEVER", "Never smoker"),
    ("SOCIAL//SMOKING//CURRENT", "Current every day smoker"),
]

# Background codes (symptoms, screenings, procedures) that carry no disease signal; drawn
# from a Zipf law so the vocabulary has a realistic long tail of rare codes.
_BACKGROUND_STEMS = [
    ("DIAGNOSIS//ICD//10//R05", "Cough"),
    ("DIAGNOSIS//ICD//10//R51", "Headache"),
    ("DIAGNOSIS//ICD//10//M545", "Low back pain"),
    ("DIAGNOSIS//ICD//10//J069", "Acute upper respiratory infection, unspecified"),
    ("DIAGNOSIS//ICD//10//Z0000", "Encounter for general adult medical examination without abnormal findings"),
    ("DIAGNOSIS//ICD//10//R1010", "Upper abdominal pain, unspecified"),
    ("DIAGNOSIS//ICD//10//N390", "Urinary tract infection, site not specified"),
    ("DIAGNOSIS//ICD//10//K219", "Gastro-esophageal reflux disease without esophagitis"),
    ("DIAGNOSIS//ICD//10//R42", "Dizziness and giddiness"),
    ("DIAGNOSIS//ICD//10//Z23", "Encounter for immunization"),
    ("DIAGNOSIS//ICD//10//M25561", "Pain in right knee"),
    ("DIAGNOSIS//ICD//10//L309", "Dermatitis, unspecified"),
    ("DIAGNOSIS//ICD//10//H5213", "Myopia, bilateral"),
    ("DIAGNOSIS//ICD//10//R0602", "Shortness of breath"),
    ("DIAGNOSIS//ICD//10//F419", "Anxiety disorder, unspecified"),
    ("DIAGNOSIS//ICD//10//E039", "Hypothyroidism, unspecified"),
]
N_BACKGROUND_PROCEDURES = 300


def background_codes() -> list[tuple[str, str]]:
    """Background codes, most frequent first."""
    procs = [
        (f"PROCEDURE//SYN//{i:04d}", f"Synthetic outpatient procedure {i}") for i in range(1, N_BACKGROUND_PROCEDURES + 1)
    ]
    return _BACKGROUND_STEMS + procs


def all_code_descriptions() -> dict[str, str]:
    """Every code the generator can emit -> its description."""
    out = {"MEDS_BIRTH": "Birth", "MEDS_DEATH": "Death"}
    out.update(SEX_CODES)
    out.update({f"RACE//{r}": f"Race: {r.lower()}" for r in RACES})
    out.update(SMOKING_CODES)
    for rows in DIAGNOSIS_CODES.values():
        out.update({c: d for c, d, _ in rows})
    out.update(DECOY_CODES)
    for rows in MEDICATION_CODES.values():
        out.update(rows)
    out.update({m.code: m.description for m in MEASUREMENTS.values()})
    out.update(VISIT_START.values())
    out.update(VISIT_END.values())
    out.update(background_codes())
    return out
