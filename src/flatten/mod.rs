//! Flatten: squash a layer stack into one layer (filled in by the flatten work).
