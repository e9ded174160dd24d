"""What the recorder keeps of the integration: rows and bytes per pair per day, by load profile."""
