"""Data-quality figures: each snapshot's profile, written when staged, and the quality tables of each derived
build.
"""
