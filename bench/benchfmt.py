"""benchfmt.py — what the bench reports share: the CPU's model name and a human duration."""
import platform
import subprocess


def lscpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def hms(s):
    if s < 60:
        return "%.1f s" % s
    s = int(round(s))
    return "%d h %02d min %02d s" % (s // 3600, s // 60 % 60, s % 60) if s >= 3600 else \
        "%d min %02d s" % (s // 60, s % 60)
