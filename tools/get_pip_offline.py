"""Stand-in for the pip bootstrap script that ansible-test downloads from a host we cannot reach.

ansible-test runs it in a fresh virtual environment with pip's install arguments; we bootstrap
pip with the standard library's ensurepip and then install what was asked for from PyPI.
"""
import subprocess
import sys

UNSUPPORTED = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install"] + [a for a in sys.argv[1:] if a not in UNSUPPORTED])
