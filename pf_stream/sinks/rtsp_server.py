"""The GStreamer side of the RTSP sink: gst-rtsp-server on its own GLib main loop thread.

One mount point, one *shared* media factory: all viewers share one pipeline (one encoder).
gst-rtsp-server builds that pipeline when the first viewer arrives.  While somebody is
connected, :attr:`RtspServer.appsrc` is its input; the sink pushes frames there, and does
nothing while it is ``None`` - so with nobody watching nothing is converted or encoded
(an encoder only works on the frames it is given).

The pipeline is built once and then kept, idle, until :meth:`RtspServer.stop`: this
server holds its own "prepare" reference on the shared media, so gst-rtsp-server never
unprepares it when the last viewer leaves.  Why: in gst-rtsp-server 1.22 (Debian 12) a
viewer that connects while the previous last one leaves is handed the cached media that
is being unprepared, and its DESCRIBE fails with "503 Service Unavailable" ("can not
reuse media" in the GStreamer log; upstream closed that race in 1.24 with
``gst_rtsp_media_can_be_shared``).  Players reconnect quickly, so that window is hit in
practice.  Marking the media reusable instead does not help: a leaving client's second
"set state NULL" then unprepares the pipeline the next viewer just started.

Threads: the server's sockets are served by a GLib main loop on a private main context
(never the default one, which a GUI or another library may own).  Each viewer's requests
run on gst-rtsp-server's client thread pool, so a viewer waiting for the first frame does
not hold up another viewer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace

from pf_stream.errors import UserError
from pf_stream.sinks.rtsp_url import RtspAddress

log = logging.getLogger("pf_stream.sinks.rtsp")

SESSION_CLEANUP_S = 2  # expire sessions of viewers that vanished without TEARDOWN
CLIENT_THREADS = 8  # requests of different viewers are served in parallel
_ROLE = "viewer"


class RtspServer:
    """Bind at construction (so a taken port fails before capture starts); serve until :meth:`stop`.

    launch: called when gst-rtsp-server needs the media pipeline; returns the launch text,
        or None if no picture geometry is known yet (the viewer is then refused).
    credentials: (user, password) for HTTP basic auth, or None for an open stream.
    """

    def __init__(
        self,
        gst: SimpleNamespace,
        address: RtspAddress,
        launch: Callable[[], str | None],
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._gst = gst
        self._address = address
        self._launch = launch
        self._lock = threading.Lock()
        self._appsrc = None  # the media pipeline's input, once built
        self._media = None  # the shared media we hold prepared (see the module docstring)
        self._viewers = 0
        self._key_unit_wanted = False  # a viewer started playing: it needs a key frame
        self.pipelines_built = 0  # media pipelines made so far (normally one)
        GLib, GstRtspServer = gst.GLib, gst.GstRtspServer

        self._context = GLib.MainContext.new()
        self._loop = GLib.MainLoop.new(self._context, False)
        server = GstRtspServer.RTSPServer.new()
        server.set_address(address.bind_host)
        server.set_service(str(address.port))
        server.get_thread_pool().set_max_threads(CLIENT_THREADS)
        try:
            # create_source binds the socket now and raises with the OS's reason.
            self._listen = server.create_source(None)
        except GLib.Error as exc:
            raise UserError(_bind_error(address, exc.message)) from None
        self.port: int = server.get_bound_port()
        self._server = server

        factory = _make_factory_class(gst)(self._create_element)
        factory.set_shared(True)  # one pipeline, one encoder, for every viewer
        factory.connect("media-configure", self._on_media_configure)
        if credentials is not None:
            self._set_auth(server, factory, *credentials)
        server.get_mount_points().add_factory(address.path, factory)
        server.connect("client-connected", self._on_client_connected)

        self._listen.attach(self._context)
        self._cleanup = GLib.timeout_source_new_seconds(SESSION_CLEANUP_S)
        self._cleanup.set_callback(self._cleanup_sessions)
        self._cleanup.attach(self._context)
        self._thread = threading.Thread(target=self._run_loop, name="rtsp-server", daemon=True)
        self._thread.start()

    # ---- what the sink uses -------------------------------------------------------------

    @property
    def appsrc(self):
        """The media pipeline's appsrc while somebody is connected, else None."""
        with self._lock:
            return self._appsrc if self._viewers > 0 else None

    @property
    def viewers(self) -> int:
        """Viewers whose RTSP connection is open."""
        with self._lock:
            return self._viewers

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the stream for every viewer (EOS, then close), stop the loop, release the port."""
        appsrc = self.appsrc
        if appsrc is not None:
            appsrc.emit("end-of-stream")  # viewers see a clean end, not a broken connection
        done = threading.Event()

        def shut_down() -> bool:
            self._server.get_mount_points().remove_factory(self._address.path)
            self._server.client_filter(lambda _server, _client: self._gst.GstRtspServer.RTSPFilterResult.REMOVE)
            self._release_media()  # the pipeline goes to NULL: encoder threads end
            self._release_listener()
            self._loop.quit()
            done.set()
            return False

        if self._thread.is_alive():
            idle = self._gst.GLib.idle_source_new()
            idle.set_callback(lambda *_: shut_down())
            idle.attach(self._context)
            done.wait(timeout_s)
            self._thread.join(timeout_s)
        else:
            self._release_listener()
        with self._lock:
            self._appsrc = None
        if not self._thread.is_alive():
            # Signal handlers (server, factory) hold this object through C, where Python's gc
            # cannot see the cycle, so this object may live on: drop the main loop and its
            # context here, or each server started and stopped keeps an eventfd open for good.
            self._loop = self._context = None

    def take_key_unit_request(self) -> bool:
        """True once after each viewer starts playing: the next frame should be a key frame,
        so that viewer has a picture at once instead of at the next periodic IDR."""
        with self._lock:
            wanted, self._key_unit_wanted = self._key_unit_wanted, False
        return wanted

    def _release_media(self) -> None:
        """Drop our prepare reference: the media is unprepared once no session holds it."""
        with self._lock:
            media, self._media = self._media, None
        if media is not None:
            media.unprepare()

    def _release_listener(self) -> None:
        # The listening socket belongs to the GSource: destroying the source and dropping our
        # last reference to it closes the socket, so the port is free when stop() returns.
        if self._listen is not None:
            self._listen.destroy()
            self._listen = None
        # The cleanup timer's callback holds this object, and the context holds the timer: a
        # cycle through C that Python's gc cannot see, so the context (and its eventfd) lived
        # for ever - one descriptor leaked per server started and stopped in a process.
        if self._cleanup is not None:
            self._cleanup.destroy()
            self._cleanup = None

    # ---- GLib / gst-rtsp-server callbacks ----------------------------------------------

    def _run_loop(self) -> None:
        self._context.push_thread_default()
        try:
            self._loop.run()
        finally:
            self._context.pop_thread_default()

    def _cleanup_sessions(self, *_args) -> bool:
        self._server.get_session_pool().cleanup()
        return True  # keep the timer

    def _create_element(self):
        text = self._launch()
        if text is None:
            log.warning("rtsp: a viewer connected before the picture size was known; refused, ask it to retry")
            return None
        try:
            return self._gst.Gst.parse_launch(text)
        except self._gst.GLib.Error as exc:
            log.error("rtsp: cannot build the media pipeline (%s): %s", exc.message, text)
            return None

    def _on_media_configure(self, _factory, media) -> None:
        appsrc = media.get_element().get_by_name("src")
        media.connect("target-state", self._on_media_target_state, appsrc)
        media.connect("prepared", self._on_media_prepared)
        media.connect("unprepared", self._on_media_unprepared)

    def _on_media_target_state(self, _media, state: int, appsrc) -> None:
        # Preparing sets the target state to PAUSED.  A live pipeline finishes preparing
        # only once data flows, so frames must be pushed from here on, before "prepared".
        if state < int(self._gst.Gst.State.PAUSED):
            return
        with self._lock:
            if self._appsrc is appsrc:
                return  # a viewer playing or pausing: nothing changes here
            self._appsrc = appsrc
            self.pipelines_built += 1
        log.info("rtsp: first viewer: encoder started")

    def _on_media_prepared(self, media) -> None:
        # Emitted once per client that waited for the preparation: hold the media once.
        with self._lock:
            if self._media is media:
                return
            self._media = media
        if not media.prepare(None):  # already prepared: only counts one more user, ours
            with self._lock:  # it was unprepared meanwhile (its viewer left at once)
                if self._media is media:
                    self._media = None

    def _on_media_unprepared(self, media) -> None:
        # Only on stop(), or after a pipeline error (see _on_client_closed).
        with self._lock:
            self._appsrc = None
            if self._media is media:
                self._media = None
        log.info("rtsp: encoder pipeline stopped")

    def _on_client_connected(self, _server, client) -> None:
        connection = client.get_connection()
        peer = connection.get_ip() if connection is not None else "?"
        with self._lock:
            self._viewers += 1
            count = self._viewers
        log.info("rtsp: client %s connected (%d open)", peer, count)
        client.connect("closed", self._on_client_closed, peer)
        client.connect("play-request", self._on_play_request)

    def _on_play_request(self, _client, _context) -> None:
        with self._lock:
            self._key_unit_wanted = True

    def _on_client_closed(self, _client, peer) -> None:
        with self._lock:
            self._viewers -= 1
            count = self._viewers
            media = self._media
        log.info("rtsp: client %s left (%d open)", peer, count)
        if count > 0 or media is None:
            return
        if media.get_status() == self._gst.GstRtspServer.RTSPMediaStatus.ERROR:
            # A broken pipeline must not be kept: once released, gst-rtsp-server drops it
            # and builds a new one for the next viewer.
            log.warning("rtsp: the encoder pipeline failed; it is rebuilt for the next viewer")
            self._release_media()
        else:
            log.info("rtsp: no viewers left: encoder idle (nothing is encoded until the next viewer)")

    def _set_auth(self, server, factory, user: str, password: str) -> None:
        Gst, GstRtspServer = self._gst.Gst, self._gst.GstRtspServer
        auth = GstRtspServer.RTSPAuth.new()
        token = GstRtspServer.RTSPToken()  # empty; new_empty is not introspectable
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, _ROLE)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        role = Gst.Structure.new_empty(_ROLE)
        role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        role.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.add_role_from_structure(role)


def _make_factory_class(gst: SimpleNamespace):
    """A media factory that asks the sink for the launch text each time it builds a pipeline.

    Defined here, not at import, because the base class only exists once GStreamer loads.
    The text is built late because the picture size is only known once the sink is opened.
    """

    class _Factory(gst.GstRtspServer.RTSPMediaFactory):
        def __init__(self, create_element: Callable[[], object]) -> None:
            super().__init__()
            self._create = create_element

        def do_create_element(self, _url):
            return self._create()

    return _Factory


def _bind_error(address: RtspAddress, reason: str) -> str:
    where = f"{address.bind_host}:{address.port}"
    low = reason.lower()
    if "in use" in low:
        hint = "pick another port in --rtsp (port 0 picks a free one) or stop the program using it"
    elif "permission" in low or "access" in low:
        hint = "ports below 1024 need root: use e.g. 8554"
    elif "assign" in low or "resolv" in low or "unknown" in low:
        hint = "use an address of this machine, '@' for all interfaces, or none for 127.0.0.1"
    else:
        hint = "check the host and port in --rtsp"
    return f"cannot serve RTSP on {where}: {reason}; {hint}"
