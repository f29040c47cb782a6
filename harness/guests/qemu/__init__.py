"""The QEMU guest: its boot image (image.py), acceleration (accel.py), the VM as a Guest (vm.py), its command
channel (agent.py) and how strategies attach it (driver.py)."""
