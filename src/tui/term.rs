//! The terminal while the UI owns it: raw mode, the alternate screen and mouse capture
//! on the way in, and all of it undone on the way out, whether the way out is `q`, a
//! panic, or a signal (the loop turns SIGTERM and SIGHUP into an ordinary return).

use std::io::{self, Stdout};
use std::sync::Once;

use crossterm::cursor::Show;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;

pub type Backend = CrosstermBackend<Stdout>;

/// The terminal in UI mode. Dropping it restores the terminal.
pub struct Session {
    terminal: Terminal<Backend>,
}

impl Session {
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        let setup = || -> io::Result<Terminal<Backend>> {
            execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
            let mut t = Terminal::new(CrosstermBackend::new(io::stdout()))?;
            t.hide_cursor()?;
            t.clear()?;
            Ok(t)
        };
        match setup() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<Backend> {
        &mut self.terminal
    }

    pub fn size(&self) -> io::Result<Rect> {
        let s = self.terminal.size()?;
        Ok(Rect::new(0, 0, s.width, s.height))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as the shell expects it. Safe to call more than once; errors
/// are ignored because there is nowhere left to report them (the terminal may be gone,
/// as after SIGHUP).
pub fn restore() {
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        Show
    );
    let _ = disable_raw_mode();
}

/// A panic message printed on the alternate screen in raw mode is lost and leaves the
/// shell unusable: restore first, then let the previous hook print the message.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
