//! What the fronts read: the store's view and the alerts judged on exactly its figures.
//!
//! The store publishes figures and knows nothing of alerts; the alert engine reads each
//! view and publishes its judgement beside it. Fronts get both at once, so a screen can
//! never show an alert judged on other figures than the ones beside it. The monitor's own
//! warnings ride along, for the screen that cannot show stderr.

use std::ops::Deref;
use std::sync::Arc;

use crate::alert::AlertsView;
use crate::store::View;
use crate::warnings::Warnings;

/// One published state. Cheap to clone (three `Arc`s); derefs to the [`View`].
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub view: Arc<View>,
    pub alerts: Arc<AlertsView>,
    pub warnings: Arc<Warnings>,
}

impl Live {
    pub fn new(view: View, alerts: AlertsView) -> Self {
        Self {
            view: Arc::new(view),
            alerts: Arc::new(alerts),
            warnings: Arc::default(),
        }
    }

    /// Whether every part is the very same as `other`'s (nothing new to draw).
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.view, &other.view)
            && Arc::ptr_eq(&self.alerts, &other.alerts)
            && Arc::ptr_eq(&self.warnings, &other.warnings)
    }
}

impl From<View> for Live {
    /// A view with no alerts (tests, and fronts before the first evaluation).
    fn from(view: View) -> Self {
        Self::new(view, AlertsView::default())
    }
}

impl Deref for Live {
    type Target = View;

    fn deref(&self) -> &View {
        &self.view
    }
}
