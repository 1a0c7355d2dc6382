"""One typed settings object for every role, read from ``DNC_*`` environment variables.

Built once in ``main()`` and passed down; nothing reads the environment anywhere else.
Nested groups use ``__``: ``DNC_TOPICS__CHANGES=my.changes``,
``DNC_KEYWORDS__OPT_OUT='["STOP","HALT"]'``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dnc.domain import keywords


class Topics(BaseModel):
    """Topic names (contract defaults; every one is configurable)."""

    inbound_messages: str = "dnc.inbound-messages"
    url_unsubscribes: str = "dnc.url-unsubscribes"
    journey_actions: str = "dnc.journey-actions"
    delivery_reports: str = "dnc.delivery-reports"
    outbound: str = "messages.outbound"
    allowed: str = "messages.outbound.allowed"
    # Optional per-channel routing of allowed messages, e.g. "messages.outbound.allowed.{channel}"
    # ({channel} is the lower-case channel). Empty = everything to `allowed`.
    allowed_template: str = ""
    blocked: str = "messages.outbound.blocked"
    dead_letter: str = "dnc.dead-letter"
    commands: str = "dnc.commands"
    changes: str = "dnc.changes"
    history: str = "dnc.history"
    notifications: str = "dnc.notifications"
    reviews: str = "dnc.reviews"


class TopicLayout(BaseModel):
    """Partition counts used by ``dnc topics ensure`` (existing topics are not changed)."""

    input_partitions: int = Field(default=6, ge=1)
    outbound_partitions: int = Field(default=6, ge=1)
    # dnc.commands and dnc.changes must have the same count: the list writer for command
    # partition p is the only producer of changelog partition p (see README, "Writers").
    list_partitions: int = Field(default=6, ge=1)
    # None: as many replicas as the cluster allows, up to 3 (min(3, brokers)).
    replication_factor: int | None = Field(default=None, ge=1)
    # A replication factor below the brokers' min.insync.replicas + 1 stops every write
    # (or every transaction) as soon as one broker is down; `dnc topics ensure` refuses it
    # unless this says a development cluster (one broker) is meant.
    allow_under_replicated: bool = False


StopScope = Literal["sender", "all_senders"]


class Keywords(BaseModel):
    opt_out: list[str] = Field(default_factory=lambda: list(keywords.DEFAULT_OPT_OUT))
    opt_out_all: list[str] = Field(default_factory=lambda: list(keywords.DEFAULT_OPT_OUT_ALL))
    opt_in: list[str] = Field(default_factory=lambda: list(keywords.DEFAULT_OPT_IN))
    # What a STOP (and an opt-out in own words, and a confirmed review by default) blocks:
    # `sender`, the sender that received it (contract rule 5), or `all_senders` of the
    # account on that channel (the FCC's revoke-all reading of 47 CFR 64.1200(a)(10),
    # FCC 24-24; README, "Revoke-all scope"). Per-account overrides in stop_scope_accounts.
    stop_scope: StopScope = "sender"
    stop_scope_accounts: dict[str, StopScope] = Field(default_factory=dict)

    def stop_scope_for(self, account: str) -> StopScope:
        return self.stop_scope_accounts.get(account, self.stop_scope)


def _default_signals() -> dict[str, list[str]]:
    # Delivery-report error codes that mean "this person opted out at the channel".
    return {
        "twilio": ["21610"],
        "whatsapp": ["131050"],
        "aws": ["DESTINATION_PHONE_NUMBER_OPTED_OUT", "OPTED_OUT"],
        "infobip": ["EC_OPTED_OUT"],
    }


class PrivacySettings(BaseModel):
    """Privacy mode (contract addition): contacts leave the edge only as contact ids."""

    # When on, commands, the changelog, the history and the list view hold contact ids
    # ("h1:…", a keyed BLAKE2b of the contact), never the contact itself.
    enabled: bool = False
    # Contact-id keys, OLDEST FIRST. The index is always keyed by contact id; the id chains
    # through every key, so adding a key (rotation) re-keys ids without any clear contact.
    # Without keys a fixed public key is used: fine while privacy mode is off (the
    # changelog holds the contacts anyway), refused when it is on.
    keys: list[SecretStr] = Field(default_factory=list)


class ExpirySettings(BaseModel):
    """Entries that leave the list by themselves (contract addition)."""

    # Days after which entries of a source expire; a source not listed never expires.
    # Opt-outs the person made (END_USER_MESSAGE, URL_OPT_OUT) are absent by default, and
    # should stay so unless counsel says otherwise.
    ttl_days: dict[str, float] = Field(default_factory=dict)
    # How often each list writer looks for expired entries in the partitions it owns.
    sweep_interval_s: float = Field(default=5.0, gt=0)


def _default_confirmations() -> dict[str, str]:
    # No marketing, no links: the FCC's 2024 rule allows one confirmation of the opt-out.
    return {
        "en": "You are unsubscribed and will get no more messages from us here. "
        "Reply START to undo.",
        "fr": "Vous êtes désinscrit et ne recevrez plus nos messages ici. "
        "Répondez START pour annuler.",
        "es": "Se ha dado de baja y no recibirá más mensajes nuestros aquí. "
        "Responda START para deshacerlo.",
        "pt": "Você cancelou a inscrição e não receberá mais nossas mensagens aqui. "
        "Responda START para desfazer.",
        "de": "Sie sind abgemeldet und erhalten hier keine Nachrichten mehr von uns. "
        "Antworten Sie START, um das rückgängig zu machen.",
        "it": "Hai annullato l'iscrizione e non riceverai più nostri messaggi qui. "
        "Rispondi START per annullare.",
        "nl": "U bent afgemeld en ontvangt hier geen berichten meer van ons. "
        "Antwoord START om dit ongedaan te maken.",
        "sv": "Du är avregistrerad och får inga fler meddelanden från oss här. "
        "Svara START för att ångra.",
    }


def _default_keyword_languages() -> dict[str, str]:
    return {
        "ARRET": "fr", "ARRÊT": "fr", "DESINSCRIRE": "fr", "DÉSINSCRIRE": "fr",
        "DESABONNER": "fr", "DÉSABONNER": "fr",
        "BAJA": "es", "ALTO": "es", "PARAR": "es", "CANCELAR": "es", "DESINSCRIBIR": "es",
        "PARE": "pt", "SAIR": "pt",
        "STOPP": "de", "STOPPEN": "de", "ABMELDEN": "de", "ABBESTELLEN": "de",
        "ANNULLA": "it", "AFMELDEN": "nl", "AVSLUTA": "sv",
    }  # fmt: skip


class ConfirmationSettings(BaseModel):
    """One confirmation message after an opt-out keyword (contract addition)."""

    enabled: bool = True
    texts: dict[str, str] = Field(default_factory=_default_confirmations)
    # Keyword → language of its confirmation; any other keyword gets "en".
    languages: dict[str, str] = Field(default_factory=_default_keyword_languages)


IntentPolicy = Literal["off", "review", "auto"]


class IntentSettings(BaseModel):
    """Opt-outs in people's own words (contract addition; README, "Intent"): what ingest
    does with an inbound message that is not an exact keyword but reads as an opt-out.

    ``off``: nothing (contract rule 5 as written). ``review``: nothing on the list; the
    verdicts are for a person to decide. ``auto``: an ``opt_out`` verdict becomes an entry
    at once, like STOP. Exact keywords behave the same in every mode.
    """

    policy: IntentPolicy = "review"
    # Per-account overrides: DNC_INTENT__ACCOUNTS='{"acme": "auto", "acme-eu": "off"}'.
    accounts: dict[str, IntentPolicy] = Field(default_factory=dict)
    # Phrase lists to load (dnc/domain/intent_phrases/<language>.toml); empty = all.
    languages: list[str] = Field(default_factory=list)

    def policy_for(self, account: str) -> IntentPolicy:
        return self.accounts.get(account, self.policy)


class IndexSettings(BaseModel):
    # Key prefix inside Redis; two deployments can share one Redis with different prefixes.
    prefix: str = "dnc"
    # Number of buckets the (account, contact) space is hashed into. Fixed for the life of
    # an index (stored in Redis; a different value refuses to start). Size it so that a
    # bucket holds 50–2000 contacts: 16384 suits 1M–30M entries, 131072 up to 250M.
    buckets: int = Field(default=16384, ge=16, le=1 << 20)
    redis_timeout_s: float = Field(default=2.0, gt=0)
    cluster: bool = False


class GateSettings(BaseModel):
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=50, ge=0)
    # In-process filter of contacts known to have no entry (see README, "Gate").
    filter_enabled: bool = True
    filter_capacity: int = Field(default=2_000_000, ge=1000)
    filter_error_rate: float = Field(default=0.01, gt=0, lt=0.5)
    # The per-message check compiled (native/hotpath, see README "Performance"); false, or
    # the extension missing: the Python check, which decides alike (and says so at start).
    native_check: bool = True


class ApiKey(BaseModel):
    """An operator-configured API key: only its SHA-256 is stored."""

    name: str
    sha256: str
    accounts: list[str]


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # DNC_API__KEYS='[{"name":"ops","sha256":"<hex>","accounts":["acme"]}]'
    # Create entries with `dnc keys hash <secret>`.
    keys: list[ApiKey] = Field(default_factory=list)
    # Read-your-writes: how long an add/remove waits for the gate to see it before 202.
    effective_timeout_s: float = Field(default=5.0, gt=0)
    # Unsubscribe-link signing keys, newest first; the first signs, all verify.
    unsubscribe_keys: list[SecretStr] = Field(default_factory=list)
    unsubscribe_ttl_days: int = Field(default=90, ge=1)
    public_base_url: str = "http://127.0.0.1:8080"
    view_path: str = ".local/view.sqlite3"
    import_max_bytes: int = 15 * 1024 * 1024
    import_max_uncompressed_bytes: int = 150 * 1024 * 1024
    # How long a thread may hold the interpreter lock while another waits for it (Python's
    # default is 5 ms). The list view applies the changelog on a thread of this process;
    # with the default, a check answered on the event loop waited up to 5 ms per switch
    # behind it while an import landed (bench_check p99 67 ms → 4.4 ms at 0.5 ms).
    gil_switch_interval_ms: float = Field(default=0.5, gt=0, le=100)


ViewBackend = Literal["sqlite", "postgres"]


class ViewSettings(BaseModel):
    """Where the list view (listing, filters, counts, export, history) lives.

    ``sqlite``: a file every API instance builds for itself (``DNC_API__VIEW_PATH``), the
    embedded default. ``postgres``: tables in the PostgreSQL at ``postgres_url``
    (``DNC_VIEW__POSTGRES_URL``, e.g. ``postgresql://dnc@127.0.0.1:15432/dnc``)."""

    backend: ViewBackend = "sqlite"
    postgres_url: SecretStr = SecretStr("")
    # Connections each API instance's reader pool keeps open to PostgreSQL at most.
    postgres_pool_size: int = Field(default=4, ge=1)
    # A filtered total is counted up to this many matches, then answered as "more than"
    # it (``total_is_lower_bound``): counting millions of rows per page takes seconds.
    count_bound: int = Field(default=10_000, ge=1)
    # PostgreSQL stops a list, count or export query running longer (503, naming it).
    postgres_statement_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _postgres_needs_a_url(self) -> ViewSettings:
        if self.backend == "postgres" and not self.postgres_url.get_secret_value().strip():
            raise ValueError(
                "DNC_VIEW__BACKEND=postgres needs DNC_VIEW__POSTGRES_URL "
                "(e.g. postgresql://dnc@127.0.0.1:15432/dnc)"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DNC_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka_bootstrap: str = "127.0.0.1:19092"
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Prefix of consumer-group and transactional ids; instances of one deployment share it.
    app_id: str = "dnc"
    topics: Topics = Field(default_factory=Topics)
    topic_layout: TopicLayout = Field(default_factory=TopicLayout)
    keywords: Keywords = Field(default_factory=Keywords)
    # provider → error codes that become CHANNEL_SIGNAL entries (contract addition).
    channel_signals: dict[str, list[str]] = Field(default_factory=_default_signals)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    expiry: ExpirySettings = Field(default_factory=ExpirySettings)
    confirmation: ConfirmationSettings = Field(default_factory=ConfirmationSettings)
    intent: IntentSettings = Field(default_factory=IntentSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    view: ViewSettings = Field(default_factory=ViewSettings)
    # Shutdown: stop taking work, finish in-flight work up to this deadline, commit, close.
    shutdown_deadline_s: float = Field(default=10.0, gt=0)
    # Liveness for the roles without HTTP: the pipeline loop touches this file at most every
    # heartbeat_interval_s and exec probes check its age. Empty = off (local runs, tests).
    heartbeat_file: str = ""
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    # A Kafka transaction step (produce, offsets, commit, abort, opening a producer) still
    # waiting after this long is taken for a broker outage: the partition's producer is
    # replaced and the batch redone from the committed offset. Also the request time-out
    # of the pipeline's clients: it bounds how long a hung (not dead) broker stalls a role.
    kafka_step_timeout_s: float = Field(default=30.0, gt=0)
    # A partition whose transactional producer has failed to start for this long while the
    # brokers answer gives up: the role leaves its consumer group and exits non-zero, so
    # another instance takes the partition. (Brokers that do not answer are an outage,
    # waited out however long it lasts.)
    producer_start_limit_s: float = Field(default=60.0, gt=0)
    # A partition with records waiting and no batch committed for this long, with no
    # reason shown by dnc_fail_closed, is stuck: the heartbeat file is no longer touched
    # (the liveness probe restarts the process) and dnc_partitions_stalled says which role.
    stall_after_s: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    log_json: bool = True
    metrics_port: Annotated[int | None, NoDecode] = None
    # False: the ingest, list writer and gate record no metrics and serve none (the
    # benchmark's baseline for what metrics cost; the API keeps its /metrics).
    metrics_enabled: bool = True
    # `dnc dev`: where each role's output goes (<dir>/<role>.log).
    dev_log_dir: str = ".local/logs"

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    def group_id(self, role: str) -> str:
        return f"{self.app_id}.{role}"

    def view_schema(self) -> str:
        """The PostgreSQL schema of this deployment's list view: its app id in the name, so
        that two namespaces sharing a database never share tables (as ``view_file`` for
        SQLite)."""
        tag = "".join(c if c.isalnum() or c == "_" else "_" for c in self.app_id.lower())
        return f"dnc_view_{tag}"[:63]

    def as_env(self) -> dict[str, str]:
        """The ``DNC_*`` variables that make another process (a ``dnc`` role started by a
        test, a benchmark or ``dnc dev``) build exactly these settings, secrets included."""
        # In JSON mode model_dump hides every secret as "**********"; the other process
        # needs the values.
        data = _revealed(self.model_dump())
        env: dict[str, str] = {}
        for name, value in data.items():
            key = f"DNC_{name.upper()}"
            # Groups are nested models (DNC_<GROUP>__<FIELD>); channel_signals is a dict
            # field of its own, given whole as JSON.
            if isinstance(value, dict) and name != "channel_signals":
                # An unset optional field (None) is its default: left out, as at the top level.
                for sub, subvalue in value.items():
                    if subvalue is not None:
                        env[f"{key}__{sub.upper()}"] = _env_value(subvalue)
            elif value is not None:
                env[key] = _env_value(value)
        return env

    def transactional_id(self, role: str, topic: str, partition: int) -> str:
        # One transactional id per input partition: aiokafka speaks TxnOffsetCommit v0,
        # which has no consumer-group fencing (KIP-447), so zombie fencing relies on the
        # new owner of a partition re-using the id of the old one.
        return f"{self.app_id}.{role}.{topic}.{partition}"


def _revealed(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_revealed(v) for v in value]
    return value


def _env_value(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
