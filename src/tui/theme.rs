//! Colours and glyphs, decided once at start-up from `--color`, `--ascii`, `NO_COLOR` and
//! the locale, so every view asks the theme instead of deciding on its own.

use ratatui::style::{Color, Modifier, Style};

use super::health::Health;

/// `--color`: when to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour unless `NO_COLOR` is set (https://no-color.org).
    #[default]
    Auto,
    Always,
    Never,
}

/// How the screen is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
    /// Only ASCII characters: no braille, blocks or box drawing.
    pub ascii: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Self {
            color: true,
            ascii: false,
        }
    }
}

impl Theme {
    /// The theme for this process: `env` looks up an environment variable, so tests can
    /// pass a fixed environment instead of mutating the real one.
    pub fn detect(
        choice: ColorChoice,
        force_ascii: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color,
        };
        Self {
            color,
            ascii: force_ascii || !locale_is_utf8(&env),
        }
    }

    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn health(self, h: Health) -> Style {
        match h {
            Health::Ok => self.fg(Color::Green),
            Health::Warn => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            // Bold as well as red, so a critical row still stands out without colour.
            Health::Crit => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Health::Idle => self.fg(Color::DarkGray),
        }
    }

    /// The mark in front of each model: distinct glyphs, so state reads without colour.
    pub fn health_mark(self, h: Health) -> &'static str {
        match (h, self.ascii) {
            (Health::Ok, false) => "●",
            (Health::Warn, false) => "▲",
            (Health::Crit, false) => "✖",
            (Health::Idle, false) => "○",
            (Health::Ok, true) => "o",
            (Health::Warn, true) => "!",
            (Health::Crit, true) => "X",
            (Health::Idle, true) => ".",
        }
    }

    pub fn header(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn paused(self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }

    /// One colour per chart line; without colour the lines differ by their legend only.
    pub fn series(self, i: usize) -> Style {
        const LINES: [Color; 4] = [Color::Green, Color::Yellow, Color::Red, Color::Cyan];
        self.fg(LINES[i % LINES.len()])
    }

    /// Shown where a value is unknown.
    pub fn unknown(self) -> &'static str {
        if self.ascii { "-" } else { "–" }
    }
}

/// The locale's character set, as a C program would pick it: the first of `LC_ALL`,
/// `LC_CTYPE`, `LANG` that is set decides; none set means the POSIX locale, ASCII.
fn locale_is_utf8(env: &impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| env(k).filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_color_wins_over_auto_but_not_over_always() {
        let e = env(&[("NO_COLOR", "1"), ("LANG", "en_US.UTF-8")]);
        assert!(!Theme::detect(ColorChoice::Auto, false, &e).color);
        assert!(Theme::detect(ColorChoice::Always, false, &e).color);
        let e = env(&[("LANG", "en_US.UTF-8")]);
        assert!(Theme::detect(ColorChoice::Auto, false, &e).color);
        assert!(!Theme::detect(ColorChoice::Never, false, &e).color);
    }

    #[test]
    fn ascii_when_the_locale_is_not_utf8() {
        assert!(Theme::detect(ColorChoice::Auto, false, env(&[])).ascii);
        assert!(Theme::detect(ColorChoice::Auto, false, env(&[("LANG", "C")])).ascii);
        assert!(!Theme::detect(ColorChoice::Auto, false, env(&[("LANG", "C.utf8")])).ascii);
        // LC_ALL overrides LANG, like in libc.
        let e = env(&[("LC_ALL", "C"), ("LANG", "en_US.UTF-8")]);
        assert!(Theme::detect(ColorChoice::Auto, false, e).ascii);
        assert!(Theme::detect(ColorChoice::Auto, true, env(&[("LANG", "C.UTF-8")])).ascii);
    }
}
