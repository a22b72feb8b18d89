import assetbuild


def test_all_is_sorted_and_importable():
    assert list(assetbuild.__all__) == sorted(assetbuild.__all__)
    for name in assetbuild.__all__:
        assert getattr(assetbuild, name) is not None


def test_python_dash_m_runs(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "assetbuild", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "build" in res.stdout
