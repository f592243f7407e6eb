"""The canonical records of segue (items, users, events) and the sources that produce them."""
