//! Rendering tests of the dashboard's pages.
