"""What the cluster rehearsal (.ci/rehearsal.py, run by CI on a real one-node SLURM) relies on,
checked without a cluster: a retried job gets more time, the shipped profile polls job states
in a way that sees a cancelled job end, and a job's error reaches its own log file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_runtime_grows_with_attempt():
    from redi.plan import runtime_for_attempt

    assert runtime_for_attempt("2h", 1) == "2h"
    assert runtime_for_attempt("2h", 2) == "4h"
    assert runtime_for_attempt("45m", 3) == "135m"
    assert runtime_for_attempt("1d", 2) == "2d"
    for bad in (("2 h", 1), ("90", 1), ("2h", 0)):
        with pytest.raises(ValueError, match="runtime"):
            runtime_for_attempt(*bad)


@pytest.mark.parametrize("configfile", ["config/paper.yaml", "config/teacher.yaml"])
def test_every_job_time_limit_grows_with_attempt(configfile):
    """Each rule's runtime, as Snakemake evaluates it for attempts 1 and 2: the retry of a job
    killed at its time limit (the SLURM profile retries once) gets twice the time, in minutes as
    Snakemake hands them to the SLURM plugin (``sbatch -t``)."""
    from snakemake.resources import Resource

    from helpers import parsed_workflow

    with parsed_workflow(configfile) as workflow:
        config = workflow.config
        checked = 0
        for rule in workflow.rules:
            runtime = rule.resources.get("runtime")
            if runtime is None or (not runtime.is_evaluable() and runtime.value is None):
                continue  # no runtime of its own (all, model_card): the profile's default applies
            assert runtime is not None and runtime.is_evaluable(), f"rule {rule.name}: fixed runtime {runtime!r}"
            first, second = (runtime.evaluate(wildcards=None, attempt=k).value for k in (1, 2))
            assert second == 2 * first > 0, (rule.name, first, second)
            checked += 1
        assert checked >= 10
        train = workflow._rules["train_stage2"].resources["runtime"].evaluate(wildcards=None, attempt=1).value
        assert train == Resource("runtime", config["resources"]["train"]["runtime"]).value


def test_profile_polls_job_states_with_squeue():
    """sacct reports a cancelled job as ``CANCELLED by <uid>``, which the SLURM plugin (2.8.0)
    does not take as finished (Snakemake polled forever after a scancel or a preemption in cancel
    mode); squeue reports ``CANCELLED``. The key must be one the installed plugin accepts."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile.get("slurm-status-command") == "squeue"
    assert profile.get("retries", 0) >= 1
    help_text = subprocess.run([str(BIN / "snakemake"), "--help"], capture_output=True, text=True, timeout=300).stdout
    assert "--slurm-status-command" in help_text


def test_failed_job_error_reaches_its_log(tmp_path):
    """A real Snakemake job of a real adapter that fails (a bad setting): its traceback is in the
    rule's own log file, not only on Snakemake's console."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(f"""
        rule corpus:
            output:
                train="train.parquet",
                test="test.json",
            log:
                "logs/corpus.log",
            params:
                cfg={{"seed": 1, "bogus_key": 2}},
            script:
                "{ROOT}/workflow/scripts/data_corpus.py"
        """)
    )
    r = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--nolock", "-d", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode != 0
    log = (tmp_path / "logs/corpus.log").read_text()
    assert "Traceback" in log and "bogus_key" in log, (log, r.stderr[-2000:])


def _slurm(*args: str, default_conf: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "REDI_SLURM_DEFAULT_CONF": str(default_conf)}
    return subprocess.run([str(ROOT / ".ci" / "slurm"), *args], capture_output=True, text=True, env=env, timeout=60)


def _state(path: Path) -> Path:
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "slurm.conf").write_text("ClusterName=rehearsal\n")
    return path


def test_rehearsal_cluster_takes_over_a_link_left_by_a_killed_rehearsal(tmp_path):
    """A rehearsal killed before it stopped (SIGKILL, or a machine restarted from a snapshot)
    leaves the default-path link and its PID record behind; the next start replaces the link
    (CI failed on exactly this) and stop removes it. A recorded PID that now belongs to another
    program is never signalled."""
    conf = tmp_path / "etc-slurm" / "slurm.conf"
    old, new = _state(tmp_path / "old"), _state(tmp_path / "new")
    conf.parent.mkdir()
    conf.symlink_to(old / "etc" / "slurm.conf")
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (old / "pids").write_text(f"slurmctld {bystander.pid}\n")  # PID reused by another program
        got = _slurm("claim-conf", str(new), default_conf=conf)
        assert got.returncode == 0, got.stderr
        assert "no longer runs" in got.stdout
        assert conf.resolve() == (new / "etc" / "slurm.conf").resolve()
        got = _slurm("stop", str(old), default_conf=conf)  # the old cluster's stop: link is not its own
        assert got.returncode == 0, got.stderr
        assert bystander.poll() is None, "stop signalled a PID that is no longer its daemon"
        assert conf.is_symlink()
        assert _slurm("stop", str(new), default_conf=conf).returncode == 0
        assert not conf.exists() and not conf.is_symlink()
        # a dangling link (the old state folder deleted) is stale too
        conf.symlink_to(tmp_path / "gone" / "etc" / "slurm.conf")
        assert _slurm("claim-conf", str(new), default_conf=conf).returncode == 0
        assert conf.resolve() == (new / "etc" / "slurm.conf").resolve()
    finally:
        bystander.kill()


def test_rehearsal_cluster_refuses_a_running_rehearsal_and_puts_back_another_config(tmp_path):
    """The default path is refused while the cluster it points to runs; another cluster's config
    file is kept aside and put back by stop, also after a rehearsal killed in between."""
    conf = tmp_path / "etc-slurm" / "slurm.conf"
    running, new = _state(tmp_path / "running"), _state(tmp_path / "new")
    conf.parent.mkdir()
    conf.symlink_to(running / "etc" / "slurm.conf")
    fake = tmp_path / "bin" / "slurmctld"  # a process whose name is a daemon's
    fake.parent.mkdir()
    fake.write_bytes(Path("/bin/sleep").read_bytes())
    fake.chmod(0o755)
    daemon = subprocess.Popen([str(fake), "60"])
    try:
        (running / "pids").write_text(f"slurmctld {daemon.pid}\n")
        got = _slurm("claim-conf", str(new), default_conf=conf)
        assert got.returncode == 1 and "still runs" in got.stderr and str(running) in got.stderr
        assert conf.resolve() == (running / "etc" / "slurm.conf").resolve()
    finally:
        daemon.kill()
        daemon.wait()
    conf.unlink()
    conf.write_text("ClusterName=site\n")
    got = _slurm("claim-conf", str(new), default_conf=conf)
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        # a real controller runs on this machine (a rehearsal beside the tests): refused, untouched
        assert got.returncode == 1 and "already runs on this machine" in got.stderr
        assert conf.read_text() == "ClusterName=site\n"
        return
    assert got.returncode == 0, got.stderr
    assert conf.resolve() == (new / "etc" / "slurm.conf").resolve()
    # killed here: the next rehearsal takes over the link and still puts the site's config back
    (new / "links").unlink()
    again = _state(tmp_path / "again")
    assert _slurm("claim-conf", str(again), default_conf=conf).returncode == 0
    assert _slurm("release-conf", str(again), default_conf=conf).returncode == 0
    assert not conf.is_symlink() and conf.read_text() == "ClusterName=site\n"
    assert not (conf.parent / "slurm.conf.before-rehearsal").exists()


def test_rehearsal_cluster_keeps_a_foreign_link_and_follows_its_state_through_symlinks(tmp_path):
    """A link that is not a rehearsal cluster's (here: to a site config on an unmounted share,
    so dangling) is kept aside and put back, never deleted; a state folder reached through a
    symlink still recognises its own link (stop removes it)."""
    conf = tmp_path / "etc-slurm" / "slurm.conf"
    conf.parent.mkdir()
    conf.symlink_to(tmp_path / "shared-site" / "slurm.conf")  # dangling, not this script's layout
    real = _state(tmp_path / "real")
    (tmp_path / "via").symlink_to(real)
    got = _slurm("claim-conf", str(tmp_path / "via"), default_conf=conf)
    if got.returncode == 1 and "already runs on this machine" in got.stderr:
        return  # a real controller runs here (a rehearsal beside the tests): refused, untouched
    assert got.returncode == 0, got.stderr
    assert "kept" in got.stdout and conf.resolve() == (real / "etc" / "slurm.conf").resolve()
    assert _slurm("stop", str(tmp_path / "via"), default_conf=conf).returncode == 0
    assert conf.is_symlink() and Path(os.readlink(conf)) == tmp_path / "shared-site" / "slurm.conf"
    assert not (conf.parent / "slurm.conf.before-rehearsal").is_symlink()
