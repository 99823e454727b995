"""Hand-written radiology sentences shared by the tokenizer and model tests (not SynthCXR output,
so these tests do not depend on the report grammar)."""

SENTENCES = [
    "There is a small left apical pneumothorax.",
    "No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. The lungs are clear.",
    "Right lower lobe consolidation, concerning for pneumonia.",
    "Moderate bilateral pleural effusions with adjacent atelectasis.",
    "Interval increase in pulmonary edema.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Heart size is normal. No focal consolidation.",
    "Stable small right pneumothorax after chest tube placement.",
    "Patchy opacities at the lung bases may represent atelectasis.",
]
