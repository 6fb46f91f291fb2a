//! Keys and the mouse as state transitions of `AppState`: selection, sort, filter,
//! detail stepping, pause, quit, scrolling; and the help that lists every key.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use modelmon::live::Live;
use modelmon::store::view::ModelView;
use modelmon::tui::app::{AppState, Outcome, Screen, SortKey};
use modelmon::tui::range::Range;
use modelmon::tui::views;
use ratatui::layout::Rect;

use super::fixtures::{alerts, fixture, fixture_view};
use super::{app, colour, press, press_at, row_of, screen};

#[test]
fn help_lists_every_key() {
    let view = fixture();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('?')]);
    let s = screen(&view, &a, 160, 45);
    for (_, k, _) in views::help::KEYS {
        assert!(s.contains(k), "help lacks {k}");
    }
    insta::assert_snapshot!("help", s);
}

#[test]
fn the_docs_list_every_key_of_the_help() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tui.md"))
        .expect("docs/tui.md");
    let keys_section = doc.split("## Keys").nth(1).expect("a Keys section");
    for (_, keys, _) in views::help::KEYS {
        for k in keys.split(", ") {
            assert!(
                keys_section.contains(&format!("`{k}`")),
                "docs/tui.md lacks `{k}`"
            );
        }
    }
}

#[test]
fn selection_moves_clamps_and_follows_the_model_across_resorts() {
    let view = fixture();
    let mut a = app(colour());
    let names =
        |a: &AppState| -> Vec<String> { a.rows(&view).iter().map(|m| m.model.clone()).collect() };
    let order = names(&a);
    press(&mut a, &view, &[KeyCode::Down, KeyCode::Char('j')]);
    assert_eq!(a.selected.as_deref(), Some(order[2].as_str()));
    press(&mut a, &view, &[KeyCode::Char('k')]);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    press(&mut a, &view, &[KeyCode::Char('G')]);
    assert_eq!(a.selected.as_deref(), order.last().map(String::as_str));
    press(&mut a, &view, &[KeyCode::Down]);
    assert_eq!(
        a.selected.as_deref(),
        order.last().map(String::as_str),
        "clamped at the end"
    );
    press(&mut a, &view, &[KeyCode::Char('g'), KeyCode::Up]);
    assert_eq!(
        a.selected.as_deref(),
        Some(order[0].as_str()),
        "clamped at the top"
    );

    a.selected = Some("resnet50".to_owned());
    press(&mut a, &view, &[KeyCode::Char('s'), KeyCode::Char('r')]);
    assert_eq!(
        a.selected.as_deref(),
        Some("resnet50"),
        "re-sorting keeps the selection"
    );
    assert_eq!(
        names(&a).first().map(String::as_str),
        Some("resnet50"),
        "name, reversed"
    );
}

#[test]
fn sort_cycles_through_every_column_both_ways() {
    let view = fixture();
    let mut a = app(colour());
    for k in SortKey::ALL.iter().skip(1) {
        press(&mut a, &view, &[KeyCode::Char('s')]);
        assert_eq!(a.sort, *k);
    }
    press(&mut a, &view, &[KeyCode::Char('s')]);
    assert_eq!(a.sort, SortKey::ALL[0], "wraps around");
    press(&mut a, &view, &[KeyCode::Char('S')]);
    assert_eq!(a.sort, *SortKey::ALL.last().expect("keys"));
}

#[test]
fn filter_typing_backspace_enter_and_escape() {
    let view = fixture();
    let mut a = app(colour());
    press(
        &mut a,
        &view,
        &[KeyCode::Char('/'), KeyCode::Char('x'), KeyCode::Char('q')],
    );
    assert!(a.editing_filter);
    assert_eq!(a.filter, "xq");
    assert!(a.rows(&view).is_empty());
    assert_eq!(
        press(&mut a, &view, &[KeyCode::Char('q')]),
        Outcome::Redraw,
        "q types while filtering"
    );
    press(&mut a, &view, &[KeyCode::Backspace, KeyCode::Backspace]);
    press(&mut a, &view, &[KeyCode::Char('g'), KeyCode::Enter]);
    assert!(!a.editing_filter);
    assert_eq!(a.filter, "xg");
    let rows: Vec<_> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    assert_eq!(rows, ["fraud-xgb"]);
    press(&mut a, &view, &[KeyCode::Esc]);
    assert!(a.filter.is_empty(), "Esc on the overview clears the filter");
    press(
        &mut a,
        &view,
        &[KeyCode::Char('/'), KeyCode::Char('z'), KeyCode::Esc],
    );
    assert!(!a.editing_filter && a.filter.is_empty());
}

#[test]
fn detail_steps_through_models_without_going_back_and_esc_returns() {
    let view = fixture();
    let mut a = app(colour());
    let order: Vec<String> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    press(&mut a, &view, &[KeyCode::Enter]);
    assert_eq!(
        (a.screen, a.selected.as_deref()),
        (Screen::Detail, Some(order[0].as_str()))
    );
    press(&mut a, &view, &[KeyCode::Tab]);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    press(
        &mut a,
        &view,
        &[
            KeyCode::Right,
            KeyCode::Left,
            KeyCode::Left,
            KeyCode::BackTab,
        ],
    );
    assert_eq!(
        a.selected.as_deref(),
        order.last().map(String::as_str),
        "wraps"
    );
    press(&mut a, &view, &[KeyCode::Char('3')]);
    assert_eq!(a.range, Range::Hour6);
    assert_eq!(a.screen, Screen::Detail);
    press(&mut a, &view, &[KeyCode::Esc]);
    assert_eq!(a.screen, Screen::Overview);
    assert_eq!(
        a.range,
        Range::Hour6,
        "the range is remembered for the next detail"
    );
}

/// The model on screen can leave the view (its traffic gone from the store): Tab then
/// goes to the first model of the overview, Shift-Tab to the last.
#[test]
fn tab_after_the_shown_model_left_goes_to_the_first_model() {
    let view = fixture();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Down, KeyCode::Enter]);
    let gone = a.selected.clone().expect("a model in the detail");
    let mut rest = fixture_view();
    rest.models.retain(|m| m.model != gone);
    let rest = Live::new(rest, alerts());
    assert!(
        screen(&rest, &a, 160, 45).contains("no longer in the view"),
        "{gone} is gone"
    );
    let order: Vec<String> = a.rows(&rest).iter().map(|m| m.model.clone()).collect();
    press(&mut a, &rest, &[KeyCode::Tab]);
    assert_eq!(a.selected.as_deref(), Some(order[0].as_str()));
    let s = screen(&rest, &a, 160, 45);
    assert!(s.contains(&format!(" {} ", order[0])), "{s}");
    a.selected = Some(gone);
    press(&mut a, &rest, &[KeyCode::BackTab]);
    assert_eq!(a.selected.as_deref(), order.last().map(String::as_str));
}

#[test]
fn pause_freezes_the_shown_view_while_new_views_arrive() {
    let first = fixture();
    let mut a = app(colour());
    press(&mut a, &first, &[KeyCode::Char('p')]);
    assert!(a.paused());
    let mut newer = fixture_view();
    newer.ts_ms += 1000;
    newer.models[0].stats.qps = 999.0;
    let newer = Live::new(newer, alerts());
    assert!(
        a.shown(&newer).same_as(&first),
        "paused: the old view stays"
    );
    let s = screen(a.shown(&newer), &a, 160, 45);
    assert!(s.contains("PAUSED"));
    // Keys still work on the frozen view.
    press(&mut a, &newer, &[KeyCode::Char('j')]);
    press(&mut a, &newer, &[KeyCode::Char('p')]);
    assert!(!a.paused());
    assert!(a.shown(&newer).same_as(&newer));
    assert!(!screen(&newer, &a, 160, 45).contains("PAUSED"));
}

#[test]
fn quit_keys_and_help_overlay() {
    let view = fixture();
    let mut a = app(colour());
    assert_eq!(press(&mut a, &view, &[KeyCode::Char('q')]), Outcome::Quit);
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    a.editing_filter = true;
    assert_eq!(
        a.handle(&ctrl_c, &view, Rect::new(0, 0, 80, 24)),
        Outcome::Quit,
        "even while typing"
    );
    a.editing_filter = false;
    press(&mut a, &view, &[KeyCode::Char('?')]);
    assert!(a.help);
    assert_eq!(press(&mut a, &view, &[KeyCode::Char('j')]), Outcome::Redraw);
    assert!(!a.help, "any key closes the help");
    assert_eq!(a.selected, None, "and does nothing else");
}

#[test]
fn mouse_wheel_moves_and_a_click_selects_then_opens() {
    let view = fixture();
    let mut a = app(colour());
    let size = Rect::new(0, 0, 160, 45);
    let order: Vec<String> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    let mouse = |kind, row| {
        Event::Mouse(MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    a.handle(&mouse(MouseEventKind::ScrollDown, 10), &view, size);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    // Row 0-1 header, 2 border, 3 column titles: the fourth model is on row 7.
    let s = screen(&view, &a, 160, 45);
    assert_eq!(row_of(&s, &order[3]), 7, "{s}");
    let click = mouse(MouseEventKind::Down(MouseButton::Left), 7);
    a.handle(&click, &view, size);
    assert_eq!(
        (a.screen, a.selected.as_deref()),
        (Screen::Overview, Some(order[3].as_str()))
    );
    a.handle(&click, &view, size);
    assert_eq!(
        a.screen,
        Screen::Detail,
        "a click on the selected row opens it"
    );
    let outside = mouse(MouseEventKind::Down(MouseButton::Left), 44);
    a.screen = Screen::Overview;
    assert_eq!(a.handle(&outside, &view, size), Outcome::Ignored);
}

#[test]
fn scrolling_a_long_list_keeps_the_selection_on_screen() {
    let mut view = fixture_view();
    let base = view.models[0].clone();
    view.models = (0..100)
        .map(|i| ModelView {
            model: format!("model-{i:03}"),
            ..base.clone()
        })
        .collect();
    let view = Live::new(view, alerts());
    let mut a = app(colour());
    let small = Rect::new(0, 0, 80, 24);
    press_at(&mut a, &view, &[KeyCode::Char('s')], small); // by name
    press_at(&mut a, &view, &[KeyCode::Char('G')], small);
    let s = screen(&view, &a, 80, 24);
    assert!(s.contains("model-099") && !s.contains("model-000"), "{s}");
    press_at(&mut a, &view, &[KeyCode::Up; 5], small);
    let s = screen(&view, &a, 80, 24);
    assert!(
        s.contains("model-099"),
        "moving up inside the page does not scroll:\n{s}"
    );
    press_at(&mut a, &view, &[KeyCode::PageUp], small);
    let s = screen(&view, &a, 80, 24);
    assert!(
        !s.contains("model-099") && s.contains("model-076"),
        "a page up:\n{s}"
    );
    press_at(&mut a, &view, &[KeyCode::Char('g')], small);
    assert!(screen(&view, &a, 80, 24).contains("model-000"));
}
