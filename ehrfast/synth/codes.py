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


# ---- the hospital world, in MIMIC-IV's MEDS conventions (the MIMIC_IV_MEDS ETL and the
# ETHOS-ARES ED event configuration) ----------------------------------------------------------
ED_REGISTRATION, ED_OUT = "ED_REGISTRATION", "ED_OUT"
# triage, at ED registration: (code, description); "Blood Pressure" carries SBP as its number and
# DBP as text, PAIN is text, TEMPERATURE is in °F, as MIMIC-IV-ED stores them
TRIAGE = {
    "TEMPERATURE": ("TEMPERATURE", "Triage temperature (°F)"),
    "HEART_RATE": ("HEART_RATE", "Triage heart rate (/min)"),
    "RESPIRATORY_RATE": ("RESPIRATORY_RATE", "Triage respiratory rate (/min)"),
    "O2_SATURATION": ("O2_SATURATION", "Triage oxygen saturation (%)"),
    "BLOOD_PRESSURE": ("Blood Pressure", "Triage blood pressure: systolic as the value, diastolic as text (mmHg)"),
    "PAIN": ("PAIN", "Triage pain score 0-10 (text)"),
    "ACUITY": ("ACUITY", "Triage acuity, 1 (most urgent) to 5"),
}
ADMISSIONS_VIA_ED = [("HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "Emergency admission from the emergency room", 0.8),
                     ("HOSPITAL_ADMISSION//OBSERVATION ADMIT//EMERGENCY ROOM", "Observation admission from the emergency room", 0.2)]
ADMISSIONS_DIRECT = [("HOSPITAL_ADMISSION//ELECTIVE//PHYSICIAN REFERRAL", "Elective admission, physician referral", 0.45),
                     ("HOSPITAL_ADMISSION//SURGICAL SAME DAY ADMISSION//PHYSICIAN REFERRAL", "Same-day surgical admission", 0.3),
                     ("HOSPITAL_ADMISSION//URGENT//TRANSFER FROM HOSPITAL", "Urgent admission, transfer from another hospital", 0.25)]
# readmissions within the follow-up window come in as direct emergency admissions
ADMISSIONS_READMISSION = [("HOSPITAL_ADMISSION//DIRECT EMER.//PHYSICIAN REFERRAL", "Direct emergency admission, physician referral", 0.7),
                          ("HOSPITAL_ADMISSION//URGENT//TRANSFER FROM HOSPITAL", "Urgent admission, transfer from another hospital", 0.3)]
DISCHARGE_DIED = "HOSPITAL_DISCHARGE//DIED"
DISCHARGE_LOCATIONS = ("HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB", "HOSPICE")
ICU_UNITS = ("Medical Intensive Care Unit (MICU)", "Surgical Intensive Care Unit (SICU)", "Coronary Care Unit (CCU)",
             "Cardiac Vascular Intensive Care Unit (CVICU)", "Neuro Surgical Intensive Care Unit (Neuro SICU)")
INSURANCE = ("Medicare", "Medicaid", "Other")
MARITAL_STATUS = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED")
LANGUAGES = ("ENGLISH", "?")
# labs and vitals that follow the latent severity during a stay (key, code, description, decimals)
STAY_LABS = {
    "LACTATE": Measurement("LACTATE", "LAB//2524-7//mmol/L", "Lactate [Moles/volume] in Serum or Plasma", 1),
    "BILIRUBIN": Measurement("BILIRUBIN", "LAB//1975-2//mg/dL", "Bilirubin.total [Mass/volume] in Serum or Plasma", 1),
    "PLATELETS": Measurement("PLATELETS", "LAB//777-3//10*3/uL", "Platelets [#/volume] in Blood", 0),
}
STAY_VITALS = {
    "HR": Measurement("HR", "VITAL//HR///min", "Heart rate", 0),
    "RR": Measurement("RR", "VITAL//RR///min", "Respiratory rate", 0),
    "SPO2": Measurement("SPO2", "VITAL//SPO2//%", "Oxygen saturation by pulse oximetry", 0),
    "TEMP": Measurement("TEMP", "VITAL//TEMP//degF", "Body temperature", 1),
}
# acute problems of a stay: (key, ICD-10-CM code, description, DRG code, DRG description)
ACUTE_PROBLEMS = [
    ("SEPSIS", "DIAGNOSIS//ICD//10//A419", "Sepsis, unspecified organism", "DRG//HCFA//871", "Septicemia or severe sepsis w MCC"),
    ("PNEUMONIA", "DIAGNOSIS//ICD//10//J189", "Pneumonia, unspecified organism", "DRG//HCFA//193", "Simple pneumonia and pleurisy w MCC"),
    ("HEART_FAILURE", "DIAGNOSIS//ICD//10//I509", "Heart failure, unspecified", "DRG//HCFA//291", "Heart failure and shock w MCC"),
    ("AKI", "DIAGNOSIS//ICD//10//N179", "Acute kidney failure, unspecified", "DRG//HCFA//682", "Renal failure w MCC"),
    ("AMI", "DIAGNOSIS//ICD//10//I214", "Non-ST elevation myocardial infarction", "DRG//HCFA//280", "Acute myocardial infarction w MCC"),
    ("STROKE", "DIAGNOSIS//ICD//10//I639", "Cerebral infarction, unspecified", "DRG//HCFA//065", "Intracranial hemorrhage or cerebral infarction w CC"),
    ("OTHER", "DIAGNOSIS//ICD//10//R6889", "Other general symptoms and signs", "DRG//HCFA//948", "Signs and symptoms w/o MCC"),
]
# ICD-10-PCS procedures, recorded at discharge as MIMIC records procedures_icd
PROCEDURES = {
    "INTUBATION": ("PROCEDURE//ICD//10//0BH17EZ", "Insertion of endotracheal airway into trachea, via natural or artificial opening"),
    "CENTRAL_LINE": ("PROCEDURE//ICD//10//02HV33Z", "Insertion of infusion device into superior vena cava, percutaneous approach"),
    "DIALYSIS": ("PROCEDURE//ICD//10//5A1D70Z", "Performance of urinary filtration, intermittent, less than 6 hours per day"),
}


def hospital_code_descriptions() -> dict[str, str]:
    """Every code the hospital world can emit -> its description."""
    out = {ED_REGISTRATION: "Emergency department registration", ED_OUT: "Emergency department departure"}
    out.update(TRIAGE.values())
    out.update({c: d for c, d, _ in ADMISSIONS_VIA_ED + ADMISSIONS_DIRECT + ADMISSIONS_READMISSION})
    out[DISCHARGE_DIED] = "Hospital discharge: died"
    out.update({f"HOSPITAL_DISCHARGE//{loc}": f"Hospital discharge to {loc.lower()}" for loc in DISCHARGE_LOCATIONS})
    for unit in ICU_UNITS:
        out[f"ICU_ADMISSION//{unit}"] = f"ICU admission: {unit}"
        out[f"ICU_DISCHARGE//{unit}"] = f"ICU discharge: {unit}"
    out.update({f"INSURANCE//{x}": f"Insurance: {x}" for x in INSURANCE})
    out.update({f"MARITAL_STATUS//{x}": f"Marital status: {x.lower()}" for x in MARITAL_STATUS})
    out.update({f"LANGUAGE//{x}": f"Language: {x}" for x in LANGUAGES})
    out.update({m.code: m.description for m in (*STAY_LABS.values(), *STAY_VITALS.values())})
    for _, dx, dx_text, drg, drg_text in ACUTE_PROBLEMS:
        out[dx] = dx_text
        out[drg] = drg_text
    out.update(PROCEDURES.values())
    return out


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
    out.update(hospital_code_descriptions())
    return out
