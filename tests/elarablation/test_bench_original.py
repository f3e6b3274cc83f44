"""`bench_original`: the figure per original context file, and files measured alone or beside others."""

import pytest

from hf_steer.elarablation.bench_original import band_miss, run_original_bench

NAMES = ("response_text: |\n  The elf girl nods. \"My name is Am\nhyperparameters: {top_k: 20}\n"
         "token_rules: {good_token_regexes: ['^[a-z]'], bad_token_regexes: ['^ ', '^[^a-z]']}\n")
OTHER = ("response_text: |\n  The door creaked open and\nhyperparameters: {top_k: 20}\n"
         "token_rules: {bad_token_regexes: ['^ t']}\n")


def test_a_file_with_good_rules_only_is_measured_by_its_band():
    # monster_variety.yaml on the bundled model: five good candidates all under min_threshold (0.0375) before, all
    # raised into or over the band after; the old stand-in (good mass over max_threshold) read 0 -> 0.064 for it
    before = [0.0258, 0.0139, 0.0068, 0.0053, 0.0052]
    after = [0.0639, 0.0485, 0.0442, 0.0405, 0.0377]
    assert band_miss(before, 0.0375, 0.05) == pytest.approx(5 * 0.0375 - sum(before))
    assert band_miss(after, 0.0375, 0.05) == pytest.approx(0.0139 + 0.0)
    assert band_miss(after, 0.0375, 0.05) < band_miss(before, 0.0375, 0.05)
    assert band_miss([], 0.0375, 0.05) == 0.0 and band_miss([0.04], 0.0375, 0.05) == 0.0


def test_a_file_reads_the_same_alone_and_beside_other_files(tmp_path, tiny_folder):
    # each file's adapter starts from the same draw: among all 43 files names_dark_m read 0.00439 -> 0.00454, alone
    # 0.00439 -> 0.00375, because every file drew its LoRA from wherever the file before left the generator
    alone, beside = tmp_path / "alone", tmp_path / "beside"
    for folder, files in ((alone, {"names.yaml": NAMES}), (beside, {"a_first.yaml": OTHER, "names.yaml": NAMES})):
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    settings = {"model": str(tiny_folder), "num_train_epochs": 1.0, "learning_rate": 0.01, "log": lambda _: None}
    one = run_original_bench(tmp_path / "alone.json", folder=alone, **settings)["results"]
    two = run_original_bench(tmp_path / "beside.json", folder=beside, **settings)["results"]
    assert [r["file"] for r in two] == ["a_first.yaml", "names.yaml"]
    assert one[0]["before"] == two[1]["before"] and one[0]["after"] == two[1]["after"]
    assert one[0]["after"] != one[0]["before"]  # it trained: the equality is not two untouched figures
