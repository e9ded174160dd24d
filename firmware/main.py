# Runs at boot on the ESP32 (after boot.py): the selector picks the firmware copy and runs it.
try:
    import semboot
except ImportError:  # installed without the selector: runs, but takes no updates
    from semfw import app

    app.main()
else:
    semboot.main()
