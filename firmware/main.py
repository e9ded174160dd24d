# Runs at boot on the ESP32 (after boot.py); the firmware lives in the semfw package.
from semfw import app

app.main()
