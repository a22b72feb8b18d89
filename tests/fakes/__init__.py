"""Test doubles that speak real protocols: host emulators on 127.0.0.1 and a fake clock."""
