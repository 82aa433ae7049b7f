// Package agent supervises one bot process: it starts the bot (or adopts the
// one holding the PID file), watches its exit and its heartbeats, respawns it,
// and obeys restart, stop and start requests from the bus. It is the only
// authority over the bot's process; everyone else asks it.
//
// A Fleet supervises many bots in one process (lifeline agent --config):
// one bus connection, and one responder goroutine answering the bus for all
// of them, but for each bot its own loop below, PID file, agent lock and
// service, so that one bot's trouble reaches no other. Agent.Run is a Fleet
// of one. LoadConfig reads the TOML file; Fleet.Reload applies a new one.
//
// # The state machine
//
// One goroutine, the loop in supervisor.run, owns all state. Everything else
// (the bot's watcher, the bus's callbacks, the request handlers, the shutdown
// request to the bot) sends it an event over a channel, and every wait is a
// timer the loop selects on; nothing in the loop sleeps. The state is the bus.State the agent reports,
// refined by two typed values:
//
//   - the phase of the operation in progress (opPhase): opStopping while a
//     stop, or the first half of a restart, waits for the old bot to exit;
//     opStarting while a start, or the second half of a restart, waits for
//     the new bot's first heartbeat. supervisor.inPhase is the one test.
//   - the bot's stop reason (stopReason): stopNone while an exit would be
//     unexpected; otherwise why the agent is stopping it (stopHung,
//     stopRestart, stopRequested, stopAgentExiting). The first reason given
//     stands, and it is the last exit's reason when the agent exits.
//
// Beside them, want says whether the operator wants the bot running (a stop
// request clears it; a start or restart sets it), and exiting that the
// agent is leaving, after which every request is refused.
//
// A start (shown as "start" below) first looks for a live bot holding the
// PID file (a look) and adopts it; otherwise it spawns one. Either way the state
// becomes starting, or running at once when HeartbeatTimeout is zero or the
// bot is a Command bot without RequireHeartbeat (a program that may never
// heartbeat), unless it is to send READY=1 first (Ready, or an earlier
// process of it did). A start that fails answers the operation in progress
// with the error and goes to backoff for at least a second.
//
// Hang detection is armed for the demo bot and RequireHeartbeat bots from
// the start; for other Command bots once they show they can heartbeat (a
// bus heartbeat, WATCHDOG=1, or READY=1 while HeartbeatTimeout is set, as
// they were handed WATCHDOG_USEC). Until then a running bot has no hang
// timer, and status says so (hang_detection). Each bot has its own
// sd_notify socket (notify.go); its messages count only from the bot's PID
// or a MAINPID= proven its descendant.
//
// The socket's path is fixed by the PID file (sdnotify.ListenFor), so a bot
// that outlived a killed agent still sends to where the agent that adopts
// it listens; that agent replaces the dead one's socket file (only a socket,
// only in its private directory, never through a symlink). What the old
// agent knew is not carried over: an adopted Command bot without
// RequireHeartbeat starts unarmed, as any bot whose past this agent did not
// see, and is armed again by its next WATCHDOG=1 (or bus heartbeat), which a
// bot handed WATCHDOG_USEC sends within half the timeout. A bot that hangs
// in the gap between the two agents, before that first WATCHDOG=1, is not
// declared hung: silence from a bot never heard proves nothing.
//
// The table lists each event with the states it can arrive in and what the
// loop does; "→ x" is the state that follows. An event in a state not listed
// for it is ignored, as are events about a bot other than the current one.
//
//	event                 state               action
//	--------------------  ------------------  ---------------------------------------------
//	heartbeat             stopped, backoff    no operation in progress, want set, not
//	                                          exiting: adopt a bot started by hand if one
//	                                          holds the PID file (→ starting); the backoff
//	                                          timer stays armed
//	                      starting            from the bot or its process group: → running,
//	                                          answer the operation in opStarting, call
//	                                          OnBotRunning, arm the hang timer
//	                      running             from the bot or its group: re-arm the hang
//	                                          timer
//	                      stopping, hung      ignored (stop reason set)
//	exit                  any with a bot      close the watcher; if the bot led its group
//	                                          and its lock is still held: wait (unlocked).
//	                                          Then stop the hang and stop-timeout timers,
//	                                          record the last exit, and:
//	                        exiting           reason = stop reason; emit stopped; → stopped;
//	                                          the loop ends
//	                        opStopping        reason "requested" ("exited while stopping"
//	                                          if the stop reason is stopNone); a restart
//	                                          enters opStarting, resets the streak and
//	                                          starts; a stop emits stopped, answers OK,
//	                                          → stopped
//	                        otherwise         stopHung: emit killed; a non-zero code or a
//	                                          signal: emit crashed; else emit exited. Answer
//	                                          an operation in opStarting with the error.
//	                                          want clear: → stopped. Else count the streak:
//	                                          a backoff delay → backoff (emit backoff), none
//	                                          → start
//	sd_notify message     any with a bot      from another PID: ignored. MAINPID= from
//	                                          the bot, a descendant: listened to as well.
//	                                          STATUS=: kept for status. Then, unless the
//	                                          bot is stopping:
//	                        WATCHDOG=trigger  as a hang timer that found it hung (no round
//	                                          trip) → hung
//	                        STOPPING=1        stop reason stopSelf, stop-timeout timer at
//	                                          StopTimeout → stopping; its exit emits
//	                                          exited, not crashed, and it is respawned
//	                        READY=1           arms hang detection (HeartbeatTimeout set);
//	                                          starting → running as for a heartbeat
//	                        WATCHDOG=1        a heartbeat (as above), and one is published
//	                                          on the bus for the bot, at most every 20 ms
//	hang timer            starting, running   deadline moved: re-arm. A 1 s bus round trip
//	                                          fails: count as just connected, re-arm. Else
//	                                          → hung, emit hung, answer an operation in
//	                                          opStarting with the error, stop reason
//	                                          stopHung, SIGKILL the group
//	stop-timeout timer    stopping            no SIGTERM yet: SIGTERM and SIGCONT to the
//	                                          group, re-arm for StopTimeout after the stop
//	                                          began; else SIGKILL
//	shutdown reply        stopping            the bot refused or did not answer, and no
//	                                          signal was sent yet: SIGTERM and SIGCONT now,
//	                                          arm the SIGKILL
//	restart request       stopped, backoff    want set, opStarting, reset the streak, start
//	                      with a bot          want set, opStopping, stop reason stopRestart:
//	                                          ask the bot over the bus to shut down, arm the
//	                                          stop-timeout timer at StopTimeout/2 (nothing
//	                                          new if SIGKILL was sent already) → stopping
//	stop request          stopped, backoff    want clear, disarm the backoff timer, answer
//	                                          OK, → stopped
//	                      with a bot          want clear, opStopping, stop reason
//	                                          stopRequested, stop as for restart → stopping
//	start request         stopped, backoff    want set, opStarting, reset the streak, start
//	                      with a bot          want set, answer OK with its PID
//	any request           exiting             answered 503
//	                      operation running   the same operation joins it (one answer for
//	                                          all); another waits in the queue and begins
//	                                          when the current one is answered
//	status request        any                 answered at once
//	backoff timer         backoff             start
//	wait timer            waiting             PID file unwritten: read it again; after
//	                                          10 reads 20 ms apart the look fails ("locked
//	                                          but unreadable"). Lock held: read it again
//	                                          every 5 ms; once released, or after 1 s, go
//	                                          on with the exit. Then begin the looks asked
//	                                          for while the wait lasted
//	any other event       waiting             not taken: it keeps in its channel, in order,
//	                                          until the wait ends
//	bus connected         any                 hang detection resumes, the timeout counted
//	                                          from the moment it connected; re-arm the
//	                                          hang timer
//	bus disconnected      any                 hang detection pauses: disarm the hang timer
//	agent exit (ctx)      any                 exiting; refuse the queue, answer the
//	                                          operation with an error. No bot, or
//	                                          StopBotOnExit unset: the loop ends and the bot
//	                                          runs on. Else want clear, stop reason
//	                                          stopAgentExiting, stop as above → stopping,
//	                                          and end the loop anyway StopTimeout + 2 s later
//
// A look that finds the PID file locked but not yet written (a bot starting
// this instant), and an exit whose bot's group still holds the lock, wait
// (waitKind): the loop polls on its wait timer and takes no other event
// until the wait ends, so every event sees the state it saw when these waits
// blocked. One call still blocks: the hang timer's bus round trips, for up
// to 1 s each. Heartbeats that arrive meanwhile queue in a buffer of 32 (3 s
// of them at 10 Hz; more only repeat that the bot lives, and a fleet keeps
// one buffer per bot).
//
// On unix, heartbeats come over a bus connection of their own, read at most
// every 250 ms (lazyconn_unix.go): a wake-up per heartbeat was nearly all of
// an idle agent's CPU. A heartbeat counts from the time the bot put in it,
// if that lies within the window before its arrival, and a bot is declared
// hung only after a round trip on that connection, read at once, has
// brought in everything sent before, and the loop has taken it in.
package agent
