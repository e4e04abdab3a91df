"""What a refresh derives from the published snapshots: identity links, golden records, lead facts and
attribution, quality tables, churn.
"""
