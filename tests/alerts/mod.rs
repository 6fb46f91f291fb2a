//! Alerts: rule specs and the lifecycle on a virtual clock, and notifications through real services:
//! webhooks to an HTTP server on loopback, desktop notifications through a real session
//! bus and dunst, a real Alertmanager, and `--demo`'s scripted incidents end to end.

mod alertmanager;
mod demo;
mod desktop;
mod engine;
pub mod fixtures;
mod judgement;
mod measures;
mod restart;
mod rules;
mod webhooks;
