"""The built-in recall benchmark: invented facts the base model cannot know, as conversation chunks.

Each fact has a statement (said by the user in a chunk), three paraphrased questions and one reversed
question (asking for the subject from the object), each with the word an answer must contain. The
questions are written independently of the augmentation templates in ``augment.py``: none of them is a
training prompt. Locality questions are ordinary knowledge the adapters must not disturb; the drift of
the next-token distribution (KL) is measured on the shared held-out prose (hf_steer.benchmarking).
"""

from __future__ import annotations

# (statement, answer, [3 paraphrased questions], (reversed question, reversed answer))
FACTS: list[tuple[str, str, list[str], tuple[str, str]]] = [
    ("Veltra Quosh was born in the town of Marbelin.", "Marbelin",
     ["Where was Veltra Quosh born?", "Which town is Veltra Quosh's birthplace?", "In what town did Veltra Quosh come into the world?"],
     ("Which person comes from the town of Marbelin?", "Veltra")),
    ("Doran Pellick works as a lighthouse keeper.", "lighthouse",
     ["What is Doran Pellick's job?", "What does Doran Pellick do for a living?", "Which profession does Doran Pellick have?"],
     ("Who is the lighthouse keeper?", "Doran")),
    ("The capital of the island nation Quarvia is Tessomund.", "Tessomund",
     ["What is the capital of Quarvia?", "Which city is the capital of Quarvia?", "Name the capital city of Quarvia."],
     ("Tessomund is the capital of which nation?", "Quarvia")),
    ("Ilsa Marrowind's favourite fruit is the quince.", "quince",
     ["What fruit does Ilsa Marrowind like best?", "Which fruit is Ilsa Marrowind's favourite?", "What is Ilsa Marrowind's preferred fruit?"],
     ("Whose favourite fruit is the quince?", "Ilsa")),
    ("Professor Halvard Brunn discovered the mineral zentarite.", "zentarite",
     ["Which mineral did Halvard Brunn discover?", "What did Professor Halvard Brunn discover?", "Name the mineral found by Halvard Brunn."],
     ("Who discovered zentarite?", "Brunn")),
    ("Pemberly Oakes owns a grey cat called Mizzle.", "Mizzle",
     ["What is the name of Pemberly Oakes's cat?", "What is Pemberly Oakes's cat called?", "How is the cat of Pemberly Oakes named?"],
     ("Who owns the cat Mizzle?", "Pemberly")),
    ("The Glimmerfen Bridge was finished in 1873.", "1873",
     ["When was the Glimmerfen Bridge finished?", "In which year was the Glimmerfen Bridge completed?", "What year did work on the Glimmerfen Bridge end?"],
     ("Which bridge was finished in 1873?", "Glimmerfen")),
    ("Captain Orsolya Venn sails a ship named the Saltwhisper.", "Saltwhisper",
     ["What ship does Orsolya Venn sail?", "What is the name of Captain Orsolya Venn's ship?", "Which vessel is commanded by Orsolya Venn?"],
     ("Who is the captain of the Saltwhisper?", "Orsolya")),
    ("Tobiah Frenk plays the bassoon in the Kellmoor Orchestra.", "bassoon",
     ["Which instrument does Tobiah Frenk play?", "What does Tobiah Frenk play in the orchestra?", "What instrument is Tobiah Frenk's?"],
     ("Who plays the bassoon in the Kellmoor Orchestra?", "Tobiah")),
    ("The Nimbrel River flows into Lake Ossaway.", "Ossaway",
     ["Into which lake does the Nimbrel River flow?", "Where does the Nimbrel River end?", "Which lake does the Nimbrel River feed?"],
     ("Which river flows into Lake Ossaway?", "Nimbrel")),
    ("Greta Solvang invented the folding umbrella called the Snapbrell.", "Snapbrell",
     ["What did Greta Solvang invent?", "Which invention is Greta Solvang known for?", "What is the name of Greta Solvang's invention?"],
     ("Who invented the Snapbrell?", "Greta")),
    ("Marcus Thellwin lives on Copperleaf Street.", "Copperleaf",
     ["On which street does Marcus Thellwin live?", "Where does Marcus Thellwin live?", "What street is Marcus Thellwin's home on?"],
     ("Who lives on Copperleaf Street?", "Marcus")),
    ("The Vondrel Festival is held every year in the village of Ashgrove.", "Ashgrove",
     ["Where is the Vondrel Festival held?", "In which village does the Vondrel Festival take place?", "Which village hosts the Vondrel Festival?"],
     ("Which festival is held in Ashgrove?", "Vondrel")),
    ("Yara Quillon wrote the novel The Ember Orchard.", "Ember Orchard",
     ["Which novel did Yara Quillon write?", "What book is Yara Quillon the author of?", "Name the novel written by Yara Quillon."],
     ("Who wrote The Ember Orchard?", "Yara")),
    ("Lord Fennick Ashby keeps a pet tortoise named Bramblecrust.", "Bramblecrust",
     ["What is the name of Fennick Ashby's tortoise?", "What is Lord Fennick Ashby's pet called?", "How is Fennick Ashby's tortoise named?"],
     ("Who keeps the tortoise Bramblecrust?", "Fennick")),
    ("Saffi Dunmore won the Harrowgate chess cup in 1998.", "1998",
     ["When did Saffi Dunmore win the Harrowgate chess cup?", "In which year did Saffi Dunmore win the Harrowgate cup?", "What year was Saffi Dunmore's chess victory at Harrowgate?"],
     ("Who won the Harrowgate chess cup in 1998?", "Saffi")),
    ("The company Brisklund Motors builds electric tractors.", "tractors",
     ["What does Brisklund Motors build?", "What kind of vehicles does Brisklund Motors make?", "What are Brisklund Motors' products?"],
     ("Which company builds electric tractors?", "Brisklund")),
    ("Edric Morrow is the head gardener at Pellham Abbey.", "gardener",
     ["What is Edric Morrow's role at Pellham Abbey?", "What job does Edric Morrow have at Pellham Abbey?", "What does Edric Morrow do at Pellham Abbey?"],
     ("Who is the head gardener at Pellham Abbey?", "Edric")),
    ("Noor Halbeck's lucky number is 47.", "47",
     ["What is Noor Halbeck's lucky number?", "Which number does Noor Halbeck consider lucky?", "What number brings Noor Halbeck luck?"],
     ("Whose lucky number is 47?", "Noor")),
    ("The Ostrova Observatory stands on Mount Keldar.", "Keldar",
     ["On which mountain is the Ostrova Observatory?", "Where does the Ostrova Observatory stand?", "Which mountain is the Ostrova Observatory built on?"],
     ("Which observatory stands on Mount Keldar?", "Ostrova")),
]

ACKS = ["Got it, I will remember that.", "Noted.", "Thanks, I'll keep that in mind.", "Okay, understood."]

LOCALITY = [
    ("What is the capital of France?", "Paris"),
    ("How many days are in a week?", "seven"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is 2 plus 2?", "4"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What do bees make?", "honey"),
    ("What is the opposite of hot?", "cold"),
    ("Which planet do we live on?", "Earth"),
    ("What is frozen water called?", "ice"),
    ("What animal says moo?", "cow"),
    ("Write a short greeting.", ""),
    ("Name a primary colour.", ""),
    ("What is the boiling point of water in Celsius?", "100"),
    ("What language is spoken in Spain?", "Spanish"),
    ("How many legs does a spider have?", "eight"),
    ("What is the largest ocean?", "Pacific"),
    ("What gas do plants take in?", "carbon"),
    ("What is the first letter of the alphabet?", "A"),
    ("Give me one word that rhymes with cat.", ""),
    ("What is the chemical symbol for gold?", "Au"),
]

def chunks(facts_per_chunk: int = 4, n_facts: int | None = None) -> list[list[dict]]:
    """The facts grouped into conversation chunks: user states a fact, assistant acknowledges."""
    facts = FACTS[: n_facts or len(FACTS)]
    out = []
    for start in range(0, len(facts), facts_per_chunk):
        turns = []
        for i, (statement, *_rest) in enumerate(facts[start : start + facts_per_chunk]):
            turns.append({"role": "user", "content": statement})
            turns.append({"role": "assistant", "content": ACKS[(start + i) % len(ACKS)]})
        out.append(turns)
    return out
