"""The conversation benchmark: personal multi-turn chats, as a user would have them.

Two sets, written by hand, with invented names the base model cannot know:

* ``DEV_CHATS`` -- the set the method was developed on (its figures are reported as ``conversation``);
* ``HELDOUT_CHATS`` -- written at the same time, never used to choose a setting, and reported beside
  it (``conversation_heldout``) as the check against fitting the visible set.

Each chat is a list of chunks (each chunk four turns: user, assistant, user, assistant, as the chat
REPL cuts them). Questions are paraphrases the user might ask later, never the training templates;
each names the kind of fact it probes:

* ``first_person``: something the user said about themselves or their people ("my sister ...");
* ``assistant``: something the assistant said or was told about itself ("your name is ...");
* ``correction``: a fact later corrected -- ``expected`` is the newest value, ``superseded`` the old one.

``BEHAVIOUR`` is the method author's own example (answer in one word), with held-out simple questions
for the length figure.
"""

from __future__ import annotations

from typing import Any

Chat = dict[str, Any]


def _chunk(*turns: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


DEV_CHATS: list[Chat] = [
    {
        "name": "mara",
        "chunks": [
            _chunk("Hi! I'm Mara, by the way. I just adopted a ferret and I named him Biscuit.",
                   "Nice to meet you, Mara! Biscuit is a lovely name for a ferret.",
                   "My sister Tilda lives in Brackwell. She works as a glassblower.",
                   "A glassblower in Brackwell, how interesting!"),
            _chunk("Actually, Tilda moved to Coldharbour last month.",
                   "Thanks for telling me. Coldharbour it is.",
                   "Can you recommend a novel for my train rides?",
                   "I recommend The Salt Road by Ines Varga."),
        ],
        "questions": [
            ("What's my name?", "Mara", "first_person", None),
            ("What did I call my new pet?", "Biscuit", "first_person", None),
            ("What kind of animal did I adopt?", "ferret", "first_person", None),
            ("What does my sister do for work?", "glassblower", "first_person", None),
            ("Where does my sister live?", "Coldharbour", "correction", "Brackwell"),
            ("Which town is Tilda living in now?", "Coldharbour", "correction", "Brackwell"),
            ("Which novel did you recommend to me?", "Salt Road", "assistant", None),
            ("Who wrote the book you suggested?", "Varga", "assistant", None),
        ],
    },
    {
        "name": "jonas",
        "chunks": [
            _chunk("From now on your name is Pemba.",
                   "Okay! I'm Pemba from now on.",
                   "I work as a night nurse at the Larkfield hospital.",
                   "Night shifts must be tiring."),
            _chunk("My daughter Ottilie turns 7 on Friday.",
                   "Happy early birthday to Ottilie!",
                   "We are having her party at Hollin Park.",
                   "Hollin Park sounds like a great spot for a party."),
        ],
        "questions": [
            ("What is your name?", "Pemba", "assistant", None),
            ("What should I call you?", "Pemba", "assistant", None),
            ("What is my job?", "nurse", "first_person", None),
            ("Which hospital do I work at?", "Larkfield", "first_person", None),
            ("What is my daughter called?", "Ottilie", "first_person", None),
            ("How old is my daughter turning?", "7", "first_person", None),
            ("Where is my daughter's party?", "Hollin", "first_person", None),
        ],
    },
    {
        "name": "ruth",
        "chunks": [
            _chunk("My favourite drink is cardamom tea.",
                   "Cardamom tea is lovely.",
                   "I'm allergic to peanuts, so keep that in mind.",
                   "I will remember that you are allergic to peanuts."),
            _chunk("Sorry, I was wrong earlier: my favourite drink is mint lemonade now.",
                   "Got it, mint lemonade.",
                   "I told you about my brother Casimir, right? He builds violins in Ostend.",
                   "A violin maker in Ostend, wonderful."),
        ],
        "questions": [
            ("What's my favourite drink?", "lemonade", "correction", "cardamom"),
            ("What do I like to drink most?", "lemonade", "correction", "cardamom"),
            ("What am I allergic to?", "peanut", "first_person", None),
            ("What is my brother's name?", "Casimir", "first_person", None),
            ("What does my brother make?", "violin", "first_person", None),
            ("Where does Casimir work?", "Ostend", "first_person", None),
        ],
    },
    {
        "name": "dev",
        "chunks": [
            _chunk("My car is a blue Vantor Ridge from 2011.",
                   "A blue Vantor Ridge, nice.",
                   "I usually park it at the garage on Quell Street.",
                   "Quell Street, noted."),
            _chunk("Oops, I meant my car is from 2013, not 2011.",
                   "Thanks, 2013 then.",
                   "What hike would you suggest for Sunday?",
                   "I suggest the Ferrow Ridge trail, it takes about four hours."),
        ],
        "questions": [
            ("What colour is my car?", "blue", "first_person", None),
            ("What make of car do I drive?", "Vantor", "first_person", None),
            ("What year is my car from?", "2013", "correction", "2011"),
            ("Where do I park my car?", "Quell", "first_person", None),
            ("Which trail did you suggest?", "Ferrow", "assistant", None),
            ("How long does the hike you suggested take?", "four", "assistant", None),
        ],
    },
]

HELDOUT_CHATS: list[Chat] = [
    {
        "name": "ilse",
        "chunks": [
            _chunk("Hello there. My name is Ilse and I teach piano in Durnholm.",
                   "Hello Ilse! Teaching piano sounds rewarding.",
                   "My husband Bram is a beekeeper.",
                   "Bees! How many hives does he keep?"),
            _chunk("He keeps 12 hives behind our house.",
                   "That's a lot of honey.",
                   "Correction: I teach piano in Veldhoven now, not Durnholm.",
                   "Thanks, Veldhoven it is."),
        ],
        "questions": [
            ("What is my name?", "Ilse", "first_person", None),
            ("What instrument do I teach?", "piano", "first_person", None),
            ("In which town do I teach?", "Veldhoven", "correction", "Durnholm"),
            ("What is my husband's name?", "Bram", "first_person", None),
            ("What does my husband do?", "beekeeper", "first_person", None),
            ("How many hives does Bram keep?", "12", "first_person", None),
        ],
    },
    {
        "name": "tomas",
        "chunks": [
            _chunk("Please call yourself Juniper when we talk.",
                   "Sure, I'm Juniper.",
                   "My dog is a greyhound called Rocket.",
                   "Rocket is a great name for a greyhound."),
            _chunk("I'm training for the Saltmarsh marathon in April.",
                   "Good luck with the training!",
                   "Which stretch do you recommend after a run?",
                   "I recommend the pigeon stretch for your hips."),
        ],
        "questions": [
            ("What's your name?", "Juniper", "assistant", None),
            ("What breed is my dog?", "greyhound", "first_person", None),
            ("What is my dog called?", "Rocket", "first_person", None),
            ("Which marathon am I training for?", "Saltmarsh", "first_person", None),
            ("When is my marathon?", "April", "first_person", None),
            ("Which stretch did you recommend?", "pigeon", "assistant", None),
        ],
    },
    {
        "name": "nadia",
        "chunks": [
            _chunk("I live in a flat above the Corvin bakery.",
                   "That must smell wonderful in the mornings.",
                   "My best friend Yusra is a pilot for Skelmer Air.",
                   "A pilot, impressive!"),
            _chunk("Actually Yusra left Skelmer Air, she flies for Nordwyn now.",
                   "Thanks for the update.",
                   "My lucky number is 31.",
                   "31, noted."),
        ],
        "questions": [
            ("Where is my flat?", "Corvin", "first_person", None),
            ("What is my best friend's job?", "pilot", "first_person", None),
            ("Which airline does Yusra fly for?", "Nordwyn", "correction", "Skelmer"),
            ("Who is my best friend?", "Yusra", "first_person", None),
            ("What's my lucky number?", "31", "first_person", None),
        ],
    },
]

# The method author's own example, as one chunk; then simple questions it was never trained on.
BEHAVIOUR = {
    "chunk": _chunk("Can you do me a favour and just answer in one word for simple things like that?", "Ok"),
    "questions": [
        ("What is the capital of Japan?", "Tokyo"), ("What do bees make?", "honey"),
        ("What colour is grass?", "green"), ("What is the opposite of up?", "down"),
        ("What animal barks?", "dog"), ("What is the largest planet?", "Jupiter"),
        ("What is the capital of Italy?", "Rome"), ("What do cows drink?", "water"),
        ("Which season comes after winter?", "spring"), ("What is the colour of snow?", "white"),
        ("What fruit is yellow and curved?", "banana"), ("What is the capital of Germany?", "Berlin"),
        ("How many legs does a dog have?", "four"), ("What do you use to write on paper?", "pen"),
        ("What is the first month of the year?", "January"), ("What shines in the sky at night?", "moon"),
        ("What is the capital of Egypt?", "Cairo"), ("What colour is the sun?", "yellow"),
        ("What do fish live in?", "water"), ("Which animal has a trunk?", "elephant"),
    ],
}


def all_questions(chats: list[Chat]) -> list[tuple[str, str, str, str | None]]:
    return [q for c in chats for q in c["questions"]]


def all_chunks(chats: list[Chat]) -> list[list[dict[str, str]]]:
    return [chunk for c in chats for chunk in c["chunks"]]
