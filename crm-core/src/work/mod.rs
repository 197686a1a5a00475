//! Work: projects for customer companies, their milestones and tasks, and a
//! project's progress computed from its tasks.

pub mod closing;
pub mod milestones;
pub mod progress;
pub mod projects;
pub mod tasks;
