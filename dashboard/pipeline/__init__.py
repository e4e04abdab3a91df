"""The refresh pipeline: standardize → validate (the gate) → publish or quarantine → derive."""
