"""Held-out chats written for issue-14 speed work; not in the bench, never used to pick a setting."""
from hf_steer.memory.bench_chats import _chunk

MY_CHATS = [
    {"name": "oskar", "chunks": [
        _chunk("Hey, I'm Oskar. I keep two tortoises called Pebble and Moss.",
               "Nice to meet you, Oskar! Pebble and Moss sound sweet.",
               "My grandmother Wilhelmina grew up in Tarrowfield. She ran a bookshop there.",
               "A bookshop in Tarrowfield, lovely."),
        _chunk("Actually, Wilhelmina grew up in Pellingford, not Tarrowfield.",
               "Thanks, Pellingford then.",
               "Any board game for a rainy evening?",
               "I suggest Lanternfall, a cooperative game for four players."),
    ], "questions": [
        ("What is my name?", "Oskar", "first_person", None),
        ("What pets do I keep?", "tortoise", "first_person", None),
        ("What are my tortoises called?", "Pebble", "first_person", None),
        ("What did my grandmother run?", "bookshop", "first_person", None),
        ("Where did my grandmother grow up?", "Pellingford", "correction", "Tarrowfield"),
        ("Which board game did you suggest?", "Lanternfall", "assistant", None),
    ]},
    {"name": "priya", "chunks": [
        _chunk("I work as a sound engineer at Brightwater Studios.",
               "That sounds like a fun job.",
               "My son Anselm is learning the cello.",
               "The cello is a beautiful instrument."),
        _chunk("We are moving to Eldham in June.",
               "Good luck with the move!",
               "My favourite food is pumpkin risotto.",
               "Pumpkin risotto, yum."),
    ], "questions": [
        ("What is my job?", "engineer", "first_person", None),
        ("Where do I work?", "Brightwater", "first_person", None),
        ("What is my son's name?", "Anselm", "first_person", None),
        ("Which instrument is my son learning?", "cello", "first_person", None),
        ("Where are we moving?", "Eldham", "first_person", None),
        ("When are we moving?", "June", "first_person", None),
        ("What food do I like best?", "risotto", "first_person", None),
    ]},
    {"name": "leon", "chunks": [
        _chunk("From now on your name is Quill.",
               "Alright, I'm Quill now.",
               "My bike is a green Farrow Sprint.",
               "A green Farrow Sprint, nice."),
        _chunk("Sorry, I was wrong: my bike is red, not green.",
               "Got it, red.",
               "Where should I ride this weekend?",
               "I recommend the Mossbank loop along the river."),
    ], "questions": [
        ("What is your name?", "Quill", "assistant", None),
        ("What brand is my bike?", "Farrow", "first_person", None),
        ("What colour is my bike?", "red", "correction", "green"),
        ("Which ride did you recommend?", "Mossbank", "assistant", None),
    ]},
]
