"""Visit sequences: vocabulary, arrays, bag of codes, the visit network and its training."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
import torch

from clinsight.data.visit_tasks import CodedVisit, VisitSample
from clinsight.errors import DataError, ModelError
from clinsight.sequence.networks import VisitNetwork, VisitNetworkConfig
from clinsight.sequence.training import SequenceTrainConfig
from clinsight.sequence.visits import (
    UNKNOWN,
    CodeVocabulary,
    bag_of_codes,
    encode_visits,
    fit_visit_network,
)


def _visit(day: str, *codes: str) -> CodedVisit:
    return CodedVisit(day, datetime.fromisoformat(day), frozenset(codes))


def _sample(pid: str, visits: list[CodedVisit], label: int = 0, nxt: tuple[str, ...] = (),
            sex: str = "female") -> VisitSample:  # fmt: skip
    return VisitSample(pid, visits[-1].time, tuple(visits), sex, 60.0, label, frozenset(nxt))


SAMPLES = [
    _sample("a", [_visit("2000-01-01", "A", "B"), _visit("2000-01-11", "A")], 1, ("X",), "male"),
    _sample("b", [_visit("2001-01-01", "A", "C")], 0, ("X", "Y")),
    _sample("b", [_visit("2001-01-01", "A", "C"), _visit("2001-02-01", "B")], 0, ("Y",)),
]


def test_vocabulary_counts_patients_not_samples() -> None:
    assert CodeVocabulary.fit(SAMPLES, min_patients=2).codes == ("A", "B")
    assert CodeVocabulary.fit(SAMPLES, min_patients=1).codes == ("A", "B", "C")
    assert CodeVocabulary.fit(SAMPLES, labels=True, min_patients=1).codes == ("X", "Y")
    with pytest.raises(DataError, match="no code is recorded for 3 or more training patients"):
        CodeVocabulary.fit(SAMPLES, min_patients=3)


def test_encoding_pads_and_times_each_visit() -> None:
    vocab = CodeVocabulary.fit(SAMPLES, min_patients=2)
    arrays = encode_visits(SAMPLES, vocab)
    assert arrays.codes.shape == (3, 2, 2)
    assert arrays.codes[0].tolist() == [[2, 3], [2, 0]]
    assert arrays.codes[1].tolist() == [[UNKNOWN, 2], [0, 0]]  # C is not in the vocabulary
    assert arrays.lengths.tolist() == [2, 1, 2]
    century = math.log1p(36525.0)
    assert arrays.times[0, 0].tolist() == pytest.approx([0.0, math.log1p(10) / century])
    assert arrays.times[0, 1].tolist() == pytest.approx([math.log1p(10) / century, 0.0])
    assert arrays.static.tolist() == [[6.0, 1.0, 0.0], [6.0, 0.0, 1.0], [6.0, 0.0, 1.0]]
    assert arrays.labels.tolist() == [1, 0, 0]
    multi = encode_visits(SAMPLES, vocab, CodeVocabulary(("X", "Y")))
    assert multi.labels.tolist() == [[1, 0], [1, 1], [0, 1]]
    features = bag_of_codes(arrays, vocab)
    assert features.shape == (3, 2 + 2 + 3 + 1)
    assert np.expm1(features[0, :4]).round(6).tolist() == [0.0, 0.0, 2.0, 1.0]
    assert np.expm1(features[1, :4]).round(6).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert np.expm1(features[:, -1]).round(6).tolist() == [2.0, 1.0, 2.0]


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm", "gru_decay"])
def test_visit_network_ignores_padding(cell: str, wide: bool) -> None:
    torch.manual_seed(0)
    vocab = CodeVocabulary.fit(SAMPLES, min_patients=1)
    arrays = encode_visits(SAMPLES, vocab, CodeVocabulary(("X", "Y")))
    config = VisitNetworkConfig(cell, len(vocab) + 2, 2, 3, 2, hidden=8, dropout=0.0, wide=wide)
    network = VisitNetwork(config).eval()
    codes, times, lengths, static = arrays.batch(np.arange(3))
    out = network(codes, times, lengths, static)
    assert out.shape == (3, 2)
    padded = network(torch.nn.functional.pad(codes, (0, 0, 0, 3)),
                     torch.nn.functional.pad(times, (0, 0, 0, 3)), lengths, static)  # fmt: skip
    assert torch.allclose(out, padded)
    alone = network(*arrays.batch(np.array([1])))
    assert torch.allclose(out[1], alone[0], atol=1e-6)
    one = VisitNetwork(VisitNetworkConfig(cell, len(vocab) + 2, 1, 3, 2, hidden=8))
    assert one.eval()(codes, times, lengths, static).shape == (3,)
    with pytest.raises(ModelError, match="unknown visit-sequence cell 'rnn'; use gru, lstm, gru"):
        VisitNetwork(VisitNetworkConfig("rnn", 5, 1, 3, 2))


def test_the_wide_term_is_a_linear_model_on_the_bag_of_codes() -> None:
    torch.manual_seed(0)
    vocab = CodeVocabulary.fit(SAMPLES, min_patients=1)
    arrays = encode_visits(SAMPLES, vocab)
    config = VisitNetworkConfig("gru", len(vocab) + 2, 1, 3, 2, hidden=8, dropout=0.0, wide=True)
    network = VisitNetwork(config).eval()
    with torch.no_grad():
        deep = VisitNetwork(replace(config, wide=False)).eval()
        deep.load_state_dict(network.state_dict(), strict=False)
        inputs = arrays.batch(np.arange(3))
        wide_part = (network(*inputs) - deep(*inputs)).numpy()
    assert network.wide is not None
    weight = network.wide.weight.detach().numpy()[0]
    bias = float(network.wide.bias.detach()[0])
    counts = bag_of_codes(arrays, vocab)[:, : len(vocab) + 2]  # computed apart, in numpy
    np.testing.assert_allclose(wide_part, counts @ weight + bias, rtol=1e-5, atol=1e-6)


def test_visit_training_is_seeded_and_keeps_the_best_epoch() -> None:
    vocab = CodeVocabulary.fit(SAMPLES, min_patients=1)
    arrays = encode_visits(SAMPLES * 4, vocab)
    config = SequenceTrainConfig(hidden=8, epochs=3, min_epochs=3, batch_size=4, seed=1)
    net_a, first = fit_visit_network(arrays, arrays, vocab, config)
    _, again = fit_visit_network(arrays, arrays, vocab, config)
    assert [e.train_loss for e in first.history] == [e.train_loss for e in again.history]
    assert (net_a.cell, net_a.vocabulary, net_a.outputs) == ("gru", 5, 1)
    assert first.best_val_auprc == max(e.val_auprc for e in first.history)
    one_class = encode_visits(SAMPLES[1:], vocab)
    with pytest.raises(ModelError, match="validation split needs stays with and without"):
        fit_visit_network(arrays, one_class, vocab, config)


def test_decay_forgets_the_past_after_a_long_gap() -> None:
    torch.manual_seed(0)
    vocab = CodeVocabulary(("A", "B", "C"))
    early = [_sample("a", [_visit("1990-01-01", "A"), _visit("2000-01-01", "C")]),
             _sample("b", [_visit("1990-01-01", "B"), _visit("2000-01-01", "C")])]  # fmt: skip
    network = VisitNetwork(VisitNetworkConfig("gru_decay", 5, 1, 3, 2, hidden=8)).eval()
    inputs = encode_visits(early, vocab).batch(np.arange(2))
    with torch.no_grad():
        network.decay.weight.fill_(0.0)
        network.decay.bias.fill_(0.0)
        kept = network(*inputs)
        network.decay.weight.fill_(1e4)  # the 10-year gap decays the state to zero
        forgotten = network(*inputs)
    assert not torch.allclose(kept[0], kept[1])
    assert torch.allclose(forgotten[0], forgotten[1])


def test_balanced_weighting_weighs_the_rare_positives() -> None:
    vocab = CodeVocabulary.fit(SAMPLES, min_patients=1)
    arrays = encode_visits(SAMPLES * 4, vocab)  # 4 positives, 8 negatives
    plain = SequenceTrainConfig(hidden=8, epochs=1, min_epochs=1, batch_size=12, seed=1)
    _, unweighted = fit_visit_network(arrays, arrays, vocab, plain)
    balanced = SequenceTrainConfig(hidden=8, epochs=1, min_epochs=1, batch_size=12, seed=1,
                                   class_weighting="balanced")  # fmt: skip
    _, weighted = fit_visit_network(arrays, arrays, vocab, balanced)
    # one full batch from the same initial weights: the positives count twice
    assert weighted.history[0].train_loss > unweighted.history[0].train_loss
    wrong = SequenceTrainConfig(hidden=8, epochs=1, class_weighting="auto")
    with pytest.raises(ModelError, match="unknown class weighting 'auto'; use none or balanced"):
        fit_visit_network(arrays, arrays, vocab, wrong)
