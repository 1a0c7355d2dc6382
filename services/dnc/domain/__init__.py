"""The list's vocabulary: contacts, channels, keywords, entries and the rules, events, times."""
