"""What the prediction API serves, independent of HTTP: champions, conditions, presets, the ledger.

``PredictionService`` loads both champions from the registry at start and keeps them in one
immutable ``Serving`` value. :meth:`PredictionService.refresh` (called by a background thread every
few seconds, and at start) reads the champion aliases; when one changed, the new models are
loaded and verified *before* the reference is swapped, so a request sees either the old pair or
the new pair, never a half-loaded one, and never fails because of the swap. A champion that fails
to load leaves the old one serving and says so in ``notes``.

Market conditions for a prediction come from the configured market data at the request's
``as_of`` (default: now for a live source, the data's last close for a historical one), cached
per minute: they are the same for every request within it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from technic_ml import stores
from technic_ml.api.ledger import PredictionLedger
from technic_ml.contracts import MarketConditions
from technic_ml.errors import ContractError, MarketDataError, RegistryError
from technic_ml.market_conditions import default_as_of, snapshot_market
from technic_ml.market_data import open_market_data
from technic_ml.nyse import to_ny
from technic_ml.predictors.registry import MODEL_NAMES
from technic_ml.predictors.serving import Predictors, universe_at
from technic_ml.settings import TechnicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """One consistent pair of champions (or their absence) and when it was loaded."""

    predictors: Predictors
    versions: dict[str, str | None]
    loaded_at: dt.datetime
    notes: dict[str, str] = field(default_factory=dict)
    #: Challengers, shadowed: predicted for every request and kept in the ledger, never served.
    challengers: Predictors | None = None
    challenger_versions: dict[str, str | None] = field(default_factory=dict)


class PredictionService:
    def __init__(
        self, settings: TechnicSettings, *, reload_seconds: float = 5.0, universe_since: dt.date | None = None
    ):
        """``universe_since``: the first session whose scans the enriched models must serve (default:
        the recent past only; the replay serves scans from its first replayed day on)."""
        self.settings = settings
        self.reload_seconds = reload_seconds
        self.market = open_market_data(settings)
        self.registry = stores.model_registry(settings)
        self.snapshots = stores.snapshot_store(settings)
        self.presets = stores.presets_history(settings)
        self.ledger = PredictionLedger(settings.ledger_path)
        self._default_as_of = self._now_or_last_close()
        self.universe = universe_at(self.market, self._default_as_of, universe_since)
        self._conditions: OrderedDict[dt.datetime, MarketConditions] = OrderedDict()
        self._conditions_lock = threading.Lock()
        self._predictions: OrderedDict[tuple, dict] = OrderedDict()
        self._predictions_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.serving = Serving(Predictors(None, None, self.universe, {}), {"count": None, "duration": None},
                               to_ny(dt.datetime.now(dt.UTC)))  # fmt: skip
        self.refresh()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- champions -------------------------------------------------------------------------------

    def champion_versions(self) -> dict[str, str | None]:
        return self._alias_versions()[0]

    def _alias_versions(self) -> tuple[dict[str, str | None], dict[str, str | None]]:
        champions, challengers = {}, {}
        for target, model in MODEL_NAMES.items():
            try:
                aliases = self.registry.aliases(model)
                champions[target] = aliases.get("champion")
                # A challenger that is the champion (or older) has nothing to prove: not shadowed.
                challenger = aliases.get("challenger")
                challengers[target] = challenger if challenger != champions[target] else None
            except RegistryError as exc:
                log.warning("%s: aliases unreadable: %s", model, exc)
                champions[target] = self.serving.versions.get(target)
                challengers[target] = self.serving.challenger_versions.get(target)
        return champions, challengers

    def refresh(self) -> bool:
        """Load newly published champions and swap them in atomically; True when something changed."""
        with self._refresh_lock:
            versions, challenger_versions = self._alias_versions()
            if versions == self.serving.versions and challenger_versions == self.serving.challenger_versions:
                return False
            predictors = Predictors.from_registry(self.registry, self.universe)
            loaded = {
                "count": predictors.count.version if predictors.count else None,
                "duration": predictors.duration.version if predictors.duration else None,
            }
            notes = dict(predictors.notes)
            # A champion that exists but failed to load: keep serving the one we had.
            for target in ("count", "duration"):
                if versions[target] and loaded[target] is None and getattr(self.serving.predictors, target):
                    setattr(predictors, target, getattr(self.serving.predictors, target))
                    loaded[target] = self.serving.versions[target]
                    notes[target] = (
                        f"champion {versions[target]} failed to load; still serving {loaded[target]}"
                    )
                    log.error("%s", notes[target])
            challengers, shadowed = self._challengers(challenger_versions)
            self.serving = Serving(
                predictors, loaded, to_ny(dt.datetime.now(dt.UTC)), notes, challengers, challenger_versions
            )
            with self._predictions_lock:
                self._predictions.clear()  # keyed by the serving pair too; this only frees memory
            log.info("serving champions %s; shadowing challengers %s", loaded, shadowed or "none")
            return True

    def _challengers(self, versions: dict[str, str | None]) -> tuple[Predictors | None, dict[str, str]]:
        """The challengers named by the registry, loaded (a broken one is logged and not shadowed:
        shadowing must never cost a served prediction)."""
        if not any(versions.values()):
            return None, {}
        challengers = Predictors.from_registry(self.registry, self.universe, ref=versions)
        shadowed = {t: m.version for t in versions if (m := getattr(challengers, t)) is not None}
        return (challengers if shadowed else None), shadowed

    def start(self) -> None:
        """Poll the registry in the background (the API's lifespan calls this)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop():
            while not self._stop.wait(self.reload_seconds):
                try:
                    self.refresh()
                except Exception:  # a broken registry must not kill the poller: log and go on
                    log.exception("reloading the champions failed")

        self._thread = threading.Thread(target=loop, name="technic-champion-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.ledger.close()

    # -- market ----------------------------------------------------------------------------------

    def _now_or_last_close(self) -> dt.datetime:
        return default_as_of(self.market)[0]

    def default_as_of(self) -> dt.datetime:
        if self.market.source == "yfinance":
            return to_ny(dt.datetime.now(dt.UTC))
        return self._default_as_of

    def conditions(self, as_of: dt.datetime | None = None) -> MarketConditions:
        when = to_ny(as_of) if as_of is not None else self.default_as_of()
        key = when.replace(second=0, microsecond=0)
        with self._conditions_lock:
            found = self._conditions.get(key)
            if found is not None:
                self._conditions.move_to_end(key)
                return found
        try:
            conditions = snapshot_market(self.market, key)
        except MarketDataError:
            raise
        except ValueError as exc:  # a moment the calendar or the data cannot place
            raise ContractError(f"as_of: {exc}") from None
        with self._conditions_lock:
            self._conditions[key] = conditions
            while len(self._conditions) > 256:
                self._conditions.popitem(last=False)
        return conditions

    # -- predictions -----------------------------------------------------------------------------

    def predict(
        self,
        config,
        conditions: MarketConditions,
        serving: Serving | None = None,
        duration_source: str | None = None,
    ) -> dict:
        """Both predictions for ``config``; the same config in the same minute (the conditions are
        cached per minute) under the same champions is the same answer, so it is cached: the
        scanner app's users mostly ask for the same presets."""
        serving = serving or self.serving
        # loaded_at identifies the pair (an id() could be reused by a later pair after a swap).
        key = (serving.loaded_at, conditions.as_of, config.model_dump_json(), duration_source)
        with self._predictions_lock:
            found = self._predictions.get(key)
            if found is not None:
                self._predictions.move_to_end(key)
                return found
        result = serving.predictors.predict(config, conditions, duration_source)
        if serving.challengers is not None:
            shadow = serving.challengers.predict(config, conditions, duration_source)
            loaded = {"count": serving.challengers.count, "duration": serving.challengers.duration}
            result = {**result, "shadows": tuple(shadow[t] for t, m in loaded.items() if m is not None)}
        with self._predictions_lock:
            self._predictions[key] = result
            while len(self._predictions) > 4096:
                self._predictions.popitem(last=False)
        return result

    # -- reports ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        serving = self.serving
        degraded = []
        if serving.predictors.count is None:
            degraded.append("no result-count model: /scan/predict answers 503 for the count")
        if serving.predictors.duration is None:
            degraded.append("no duration model: durations are the seed heuristic, flagged")
        if self.universe is None:
            degraded.append("no universe statistics: enriched models abstain")
        latest = self.snapshots.latest()
        if latest is not None and latest.degraded:
            degraded.append("latest market snapshot degraded: " + "; ".join(latest.degraded_reasons or []))
        degraded += [f"{t}: {n}" for t, n in serving.notes.items()]
        return {
            "ready": serving.predictors.count is not None,
            "models": serving.versions,
            "loaded_at": serving.loaded_at.isoformat(),
            "degraded": degraded,
            "market_source": self.market.source,
        }
