//! End to end: the real `modelmon-tui` in a private tmux server, driven by keys and
//! signals as a user at a terminal would, and the terminal checked to be restored.

use crate::support;

/// A private tmux server (its own socket) running one shell in a detached pane.
struct Tmux {
    socket: String,
    state: tempfile::TempDir,
}

impl Tmux {
    fn start(w: u16, h: u16, extra_env: &str) -> Self {
        let socket = format!("modelmon-test-{}", support::unique("tui"));
        let state = tempfile::tempdir().expect("temp dir");
        let path = std::env::var("PATH").unwrap_or_default();
        // A clean environment: what a user's login shell would have, and nothing of ours.
        let shell = format!(
            "env -i PATH={path} TERM=tmux-256color LANG=C.UTF-8 HOME={home} \
             XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={home} {extra_env} \
             bash --norc --noprofile",
            home = state.path().display(),
        );
        let t = Self { socket, state };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            &shell,
        ]);
        // A lone Esc must reach the app at once, not after tmux's default 500 ms wait.
        t.tmux(&["set-option", "-s", "escape-time", "10"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (scripts/services.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "t", k]);
        }
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn shell_pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Polls the screen until `pred` holds; panics with the last screen otherwise. A
    /// minute: a debug `--demo` fills about a million events of history before its first
    /// frame, which took over 20 s on two cores shared with a parallel build.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.path().join(name)).unwrap_or_default()
    }

    /// Runs the monitor in the pane's shell, noting the terminal settings before and after.
    fn run_monitor(&self, args: &str) {
        let bin = env!("CARGO_BIN_EXE_modelmon-tui");
        let cmd = format!(
            "stty -a > $HOME/before; {bin} {args}; echo EXIT=$?; stty -a > $HOME/after; echo PROMPT-$((40+2))-BACK"
        );
        self.tmux(&["send-keys", "-t", "t", "-l", &cmd]);
        self.keys(&["Enter"]);
    }

    /// After the monitor exited: the shell has its prompt, its settings and its screen back.
    fn assert_restored(&self) -> String {
        // The marker is computed by the shell, so the typed command line cannot match it.
        let s = self.wait("the shell to be back", |s| s.contains("PROMPT-42-BACK"));
        assert!(!self.alternate_screen(), "the alternate screen was left");
        // The first line holds the size, which a resize legitimately changes.
        let settings = |f: &str| self.file(f).lines().skip(1).collect::<Vec<_>>().join("\n");
        let (before, after) = (settings("before"), settings("after"));
        assert!(before.contains("icanon"), "stty ran before: {before}");
        assert_eq!(before, after, "stty -a differs after the monitor");
        for flag in ["icanon", "echo", "icrnl", "opost"] {
            assert!(
                after.split_whitespace().any(|w| w == flag),
                "{flag} is not restored: {after}"
            );
        }
        s
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn tmux_navigate_detail_help_resize_and_quit_restores_the_terminal() {
    require!(Tmux);
    let t = Tmux::start(160, 45, "");
    t.run_monitor("--demo");
    // One demo model goes silent for 50 s of every 5 minutes, so do not count on five.
    let s = t.wait("the overview with the demo models", |s| {
        s.contains("broker demo") && s.contains("fraud-xgb") && s.contains("llm-chat")
    });
    assert!(
        s.contains("MODEL") && s.contains("P95") && s.contains("QPS 5m"),
        "{s}"
    );
    assert!(t.alternate_screen(), "the UI draws on the alternate screen");

    // Down to the second row, then into its detail.
    t.keys(&["j", "Enter"]);
    let s = t.wait("the detail view", |s| {
        s.contains("range [1] 5m") && s.contains("instances")
    });
    assert!(s.contains(" 2/"), "the second model is shown:\n{s}");
    assert!(s.contains("latency ms") && s.contains("requests/s") && s.contains("status"));
    // The model's name heads the detail view. Which model comes next depends on the
    // demo's traffic-drop incident (a silent model leaves the list), so check that
    // another model is shown, still in the detail view.
    let title = |s: &str| {
        s.lines()
            .find(|l| l.contains("range [1] 5m"))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let first = title(&s).expect("a model name in the detail header");
    t.keys(&["Tab"]);
    t.wait("the next model without going back", |s| {
        title(s).is_some_and(|m| m != first)
    });
    t.keys(&["2"]);
    t.wait("the 1h range", |s| s.contains("-1h"));
    t.keys(&["Escape"]);
    t.wait("the overview again", |s| {
        s.contains("sort health") && !s.contains("instances")
    });

    t.keys(&["?"]);
    t.wait("the help overlay", |s| {
        s.contains(" keys ") && s.contains("Shift-Tab")
    });
    t.keys(&["x"]);
    t.wait("the help to close", |s| !s.contains(" keys "));

    t.keys(&["p"]);
    t.wait("PAUSED in the header", |s| s.contains("PAUSED"));
    t.keys(&["p"]);
    t.wait("the pause to end", |s| !s.contains("PAUSED"));

    t.tmux(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    let s = t.wait("a redraw at 80x24", |s| {
        s.lines().count() <= 24
            && s.lines()
                .any(|l| l.starts_with('└') && l.chars().count() == 80)
    });
    for col in ["MODEL", "QPS", "P95", "P99", "ERR"] {
        assert!(s.contains(col), "{col} missing at 80x24:\n{s}");
    }

    t.keys(&["q"]);
    let s = t.assert_restored();
    assert!(s.contains("EXIT=0"), "{s}");
}

#[test]
fn tmux_sigterm_and_sighup_restore_the_terminal() {
    require!(Tmux);
    for signal in ["TERM", "HUP"] {
        let t = Tmux::start(120, 30, "");
        t.run_monitor("--demo");
        t.wait("the overview", |s| s.contains("fraud-xgb"));
        let shell = t.shell_pid();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .expect("the shell's children");
        let pid = children
            .split_whitespace()
            .next()
            .expect("the monitor runs");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let s = t.assert_restored();
        assert!(s.contains("EXIT=0"), "SIG{signal} is a clean exit:\n{s}");
        assert!(!s.contains("fraud-xgb"), "the UI's screen is gone:\n{s}");
    }
}

#[test]
fn tmux_no_color_and_ascii_fallback() {
    require!(Tmux);
    // A POSIX locale cannot show braille or box drawing: the UI falls back to ASCII.
    let t = Tmux::start(120, 30, "NO_COLOR=1 LC_ALL=C");
    t.run_monitor("--demo");
    let s = t.wait("the overview", |s| s.contains("fraud-xgb"));
    assert!(s.is_ascii(), "only ASCII without a UTF-8 locale:\n{s}");
    let styled = t.tmux(&["capture-pane", "-p", "-e", "-t", "t"]);
    for fg in ["[31", "[32", "[33", "[36", "[90", "38;"] {
        assert!(
            !styled.contains(&format!("\x1b{fg}")),
            "a colour ({fg}) with NO_COLOR set"
        );
    }
    t.keys(&["Enter"]);
    let s = t.wait("the detail", |s| s.contains("range [1] 5m"));
    assert!(s.is_ascii(), "only ASCII in the detail:\n{s}");
    t.keys(&["q"]);
    t.assert_restored();
}

#[test]
fn tmux_broker_down_shows_in_the_header_and_its_warnings_under_w_without_tearing_the_screen() {
    require!(Tmux);
    let t = Tmux::start(120, 30, "");
    // Port 1 on loopback: nothing listens, so every connection attempt fails at once.
    // Without Docker: containers other tests run on this machine's engine would appear.
    t.run_monitor("--amqp amqp://127.0.0.1:1/%2f --no-docker");
    let s = t.wait("the broker reported down", |s| s.contains("broker down"));
    assert!(s.contains("no events yet"), "{s}");
    // After broker_down's 10 s the header says the monitor is blind, first thing.
    let s = t.wait("broker_down to fire", |s| s.contains("BLIND: broker down"));
    assert!(
        s.lines()
            .next()
            .is_some_and(|l| l.starts_with("modelmon   BLIND: broker down")),
        "{s}"
    );
    // Give the reconnect loop time to log a few warnings, had they gone to the screen.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let s = t.screen();
    assert!(
        !s.contains("WARN") && !s.contains("modelmon::"),
        "a log line on screen:\n{s}"
    );
    assert!(
        s.lines().next().is_some_and(|l| l.starts_with("modelmon")),
        "{s}"
    );
    // What the log said is not lost: the header counts it and `w` lists it.
    assert!(
        s.contains("new warning"),
        "the header counts the warnings:
{s}"
    );
    t.keys(&["w"]);
    let s = t.wait("the warnings screen", |s| {
        s.contains("the monitor's warnings")
    });
    assert!(
        s.contains("127.0.0.1:1") && s.contains("retrying in"),
        "the broker's warning, with where it tried:
{s}"
    );
    t.keys(&["q"]);
    t.assert_restored();
}
