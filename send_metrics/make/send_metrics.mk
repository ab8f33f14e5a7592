# send_metrics.mk: one `-include send_metrics.mk` at the END of a GNU Makefile records one \
# event per make run, with where the time went per target (see `send_metrics makefile`). \
# This file is also the per-recipe-line shim. The makefile keeps its own SHELL; only \
# .SHELLFLAGS changes, so make runs `$(SHELL) send_metrics.mk LEVEL TARGET PREREQUISITES GOALS \
# BIN CACHE DIR $(SHELL) FLAGS... LINE`: the makefile's own (sh-compatible) shell reads the \
# code below, which notes the line's start and end in the run's trace file, runs `$(SHELL) \
# FLAGS... LINE` exactly as make would have, and ends as that ended (a line killed by a \
# signal kills this shell with the same signal, so make sees what it would have seen). INT and \
# QUIT are caught while the line runs (a handler, unlike an ignore, is reset in the line's own \
# process), so a line that catches Ctrl-C and exits 0 is not cut short; a line ended by them \
# re-raises them here and stays open in the trace (the run was interrupted). A \
# $(shell ...) call, which make runs the same way but with its own MAKELEVEL (not one more) and, \
# outside a recipe, no target, is exec'd untouched. Every word before the makefile's flags is made of characters no shell and no \
# make splits or reads (others are %XX-encoded, or the make is not traced). The first line of \
# the outermost make starts the watcher that records the event once make has ended; INT, QUIT \
# and HUP are ignored while it is forked, so a Ctrl-C at that moment cannot kill it before it \
# leaves make's session. What this shell itself says about a line killed by a signal goes to \
# TRACE.<make's pid> (one file per make, made by its first line; under -j one per line, \
# TRACE.<shim pid>; the line keeps make's stderr; files made under umask 077, set back to the \
# line's own from /proc/$$/status where it shows, else in a subshell): \
# a status above 128 with such a message is a signal, one without it an exit status. The \
# first line creates the trace file empty (the one that succeeds starts the watcher) and then \
# appends its header like any record: under -j another line's start may come first, and a \
# header written at offset 0 would overwrite it. \
# Variables here are named _sm_*, set only in this shell, never exported. \
# Make reads these lines as one comment (each ends with a backslash). \
[ -z "${BASH_VERSINFO:-}" ] || SHLVL=$((${SHLVL:-1} - 1)); \
[ "${MAKELEVEL:-0}" != "$1" ] && [ "$2" != - ] || { shift 8; exec "$@"; }; \
[ ! -e /dev/fd/9 ] && [ -e /dev/fd/2 ] || { shift 8; exec "$@"; }; \
_sm_f=${SEND_METRICS_MAKE_RUN:-}; \
if [ -z "$_sm_f" ]; then \
  _sm_f=$6/$PPID.trace; \
  if [ ! -e "$_sm_f" ]; then \
    [ -d "$6" ] || mkdir -p -m 700 "$6" 2>/dev/null; \
    _sm_g=$4; \
    if (set -C; umask 077; : >"$_sm_f") 2>/dev/null; \
    then (read -r _sm_s </proc/$PPID/stat || _sm_s=; set -- $_sm_s; \
        printf 'H\t%s\t%s\t%s\t%s\n' "$PPID" "${22:-}" "${MAKEFLAGS%% *}" "$_sm_g" \
        >>"$_sm_f") 2>/dev/null; \
      trap '' INT QUIT HUP; "$5" _make-watch "$_sm_f" </dev/null >/dev/null 2>&1 & \
      trap - INT QUIT HUP; \
    fi; \
  fi; \
  SEND_METRICS_MAKE_RUN=$_sm_f; export SEND_METRICS_MAKE_RUN; \
fi; \
_sm_m=$_sm_f.$PPID; [ "$8" = - ] || _sm_m=$_sm_f.$$; \
{ read -r _sm_s _sm_x </proc/uptime; } 2>/dev/null || _sm_s=$(date +%s); \
[ -f "$_sm_f" ] && [ ! -h "$_sm_f" ] && \
{ [ -w "$_sm_m" ] || { _sm_u=; { read -r _sm_x; read -r _sm_x _sm_u; } </proc/$$/status; \
  case $_sm_u in 0[0-7][0-7][0-7]) umask 077; : >"$_sm_m"; umask "$_sm_u";; \
  *) (umask 077; : >"$_sm_m");; esac; [ -w "$_sm_m" ]; }; } 2>/dev/null && \
{ printf 'S\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$$" "$_sm_s" "$PPID" "$1" "$7" "$2" "$3" \
  >>"$_sm_f"; } 2>/dev/null || { shift 8; exec "$@"; }; \
shift 8; _sm_i=; trap '_sm_i=2' INT; trap '_sm_i=3' QUIT; \
if [ -n "${BASH_VERSINFO:-}" ]; then \
  { "$@" 2>&9 9>&-; _sm_e=$?; } 9>&2 2>"$_sm_m"; \
else { (exec "$@" 2>&9 9>&-); _sm_e=$?; } 9>&2 2>"$_sm_m"; fi; \
{ read -r _sm_s _sm_x </proc/uptime; } 2>/dev/null || _sm_s=$(date +%s); \
_sm_k=; [ "$_sm_e" -le 128 ] || [ ! -s "$_sm_m" ] || _sm_k=$((_sm_e - 128)); \
if [ -n "$_sm_i" ] && [ "$_sm_e" = $((_sm_i + 128)) ]; then _sm_k=$_sm_i; \
else { printf 'E\t%s\t%s\t%s\t%s\n' "$$" "$_sm_s" "$_sm_e" "$_sm_k" >>"$_sm_f"; } 2>/dev/null; fi; \
[ -z "$_sm_k" ] || { trap - "$_sm_k"; kill -"$_sm_k" $$; }; \
exit "$_sm_e"

# The make part. Nothing here spawns a process or expands a variable the makefile did not: the
# checks use only make's own functions on raw values ($(value)), so `make -n`, `-q`, `-p` (tab
# completion runs `make -pRrq`) and a make with nothing to do cost nothing, and
# --warn-undefined-variables has nothing to say. Its variables are named _sm.*: a name with a
# dot is never exported, not even by a bare `export` or .EXPORT_ALL_VARIABLES. Tracing is on
# only when all hold: GNU make 4.2 or later; not -n, -q, -p or -t; DO_NOT_TRACK and
# SEND_METRICS_DISABLED unset (or exactly 0/false/no/off); SHELL and .SHELLFLAGS set in the
# makefile (not on make's command line), SHELL one of sh, bash, dash, ksh, mksh, ash (bash
# without BASH_ENV); every path that reaches the shell made of plain characters; and either a
# traced make above us (recursive $(MAKE), or `send_metrics wrap`) or a recorded yes (in a
# regular file, not a symbolic link) and send_metrics on PATH. Otherwise this file changes
# nothing.
# MAKEFILE_LIST as without this file (a recipe may read or export it).
_sm.last := $(lastword $(MAKEFILE_LIST))
MAKEFILE_LIST := $(wordlist 2,$(words $(MAKEFILE_LIST)),x $(MAKEFILE_LIST))
ifeq ($(origin _sm.included),undefined)
_sm.included := 1
_sm.app := send_metrics
ifneq ($(filter-out undefined default automatic,$(origin SEND_METRICS_APP)),)
_sm.app := $(value SEND_METRICS_APP)
endif
# The off switches, as `fastpath.env_flag` reads them: only empty, 0, false, no or off (ASCII
# case folded, nothing around them) leave tracing on; " ", "0 ", "OFF " turn it off. Each value
# is read raw with $(value), never expanded, and compared whole: <v> and <word> each contain
# the other only when they are equal.
_sm.lower = $(subst A,a,$(subst B,b,$(subst C,c,$(subst D,d,$(subst E,e,$(subst F,f,$(subst \
  G,g,$(subst H,h,$(subst I,i,$(subst J,j,$(subst K,k,$(subst L,l,$(subst M,m,$(subst \
  N,n,$(subst O,o,$(subst P,p,$(subst Q,q,$(subst R,r,$(subst S,s,$(subst T,t,$(subst \
  U,u,$(subst V,v,$(subst W,w,$(subst X,x,$(subst Y,y,$(subst Z,z,$1))))))))))))))))))))))))))
_sm.eq = $(and $(findstring <$1>,<$2>),$(findstring <$2>,<$1>))
_sm.is_off = $(strip $(foreach _sm.w,<> <0> <false> <no> <off>,$(call _sm.eq,<$1>,$(_sm.w))))
_sm.allows = $(call _sm.is_off,$(call _sm.lower,$(value $1)))
# Words for the shell: every character a shell or make could read (quotes, $, `, \, ;, ( ...),
# % itself, the list separator `,` and white space become %XX; lists are joined by `,` and an
# empty one is `-`. maketrace.py decodes them. A value that needs no encoding is `plain`.
_sm.comma := ,
_sm.empty :=
_sm.space := $(_sm.empty) $(_sm.empty)
_sm.tab := $(_sm.empty)	$(_sm.empty)
_sm.hash := \#
_sm.lp := (
_sm.rp := )
define _sm.nl


endef
_sm.enc = $(subst $(_sm.nl),%0A,$(subst $(_sm.tab),%09,$(subst ~,%7E,$(subst ^,%5E,$(subst \
  },%7D,$(subst {,%7B,$(subst !,%21,$(subst $(_sm.hash),%23,$(subst \,%5C,$(subst ],%5D,$(subst \
  [,%5B,$(subst ?,%3F,$(subst *,%2A,$(subst >,%3E,$(subst <,%3C,$(subst |,%7C,$(subst &,%26,$(subst \
  ;,%3B,$(subst $(_sm.rp),%29,$(subst $(_sm.lp),%28,$(subst $$,%24,$(subst `,%60,$(subst \
  ",%22,$(subst ',%27,$(subst $(_sm.comma),%2C,$(subst %,%25,$1))))))))))))))))))))))))))
_sm.list = $(or $(subst $(_sm.space),$(_sm.comma),$(strip $(call _sm.enc,$1))),-)
_sm.one = $(or $(subst $(_sm.space),%20,$(call _sm.enc,$1)),-)
_sm.plain = $(and $1,$(call _sm.eq,$1,$(call _sm.one,$1)))
# An empty or relative HOME is no home (never `/.config`): without XDG directories, no tracing.
# Each path is used only when it is plain: no white space (make would split it), no glob
# character ($(wildcard) would match another directory), nothing a shell reads.
_sm.abs_dir = $(if $(filter /%,$(firstword $(value $1))),$(value $1))
_sm.home := $(call _sm.abs_dir,HOME)
_sm.xdg = $(or $(call _sm.abs_dir,XDG_$1_HOME),$(if $(_sm.home),$(_sm.home)/.$2))
_sm.config := $(call _sm.xdg,CONFIG,config)
_sm.config := $(if $(call _sm.plain,$(_sm.config)),$(_sm.config))
_sm.cache := $(call _sm.xdg,CACHE,cache)
_sm.cache := $(if $(call _sm.plain,$(_sm.cache)),$(_sm.cache))
_sm.state := $(if $(_sm.config),$(firstword \
  $(wildcard $(_sm.config)/$(_sm.app)/metrics.toml)))
# The decision is read only from a file that is not a symbolic link (one to /dev/zero would
# grow make without end). A FIFO put in its place by its owner would still block: see README.
_sm.regular = $(and $1,$(if $(wildcard $1/.),,file), \
  $(call _sm.eq,$(realpath $1),$(realpath $(dir $1))/$(notdir $1)))
_sm.granted = $(and $(call _sm.regular,$(_sm.state)),$(findstring \
  decision = "granted",$(file <$(_sm.state))))
_sm.bin := $(firstword $(wildcard $(addsuffix /send_metrics,$(subst :, ,$(value PATH)))))
# This file as the shell will open it: its absolute path, or where that has characters a shell
# reads, the relative one make found it at (recipes run in make's own directory).
_sm.abs := $(abspath $(_sm.last))
_sm.self := $(if $(call _sm.plain,$(_sm.abs)),$(_sm.abs),$(if $(filter /%,$(_sm.last)),, \
  $(if $(call _sm.plain,$(_sm.last)),./$(_sm.last))))
# SHELL as the makefile set it, one word naming an sh-compatible shell, and .SHELLFLAGS from the
# makefile, both expanding to a fixed text (expanding them again has no side effects).
_sm.fixed = $(if $(filter simple,$(flavor $1)),fixed,$(if $(findstring $$,$(value $1)),,fixed))
_sm.shell_ok = $(and $(filter default file,$(origin SHELL)),$(call _sm.fixed,SHELL), \
  $(filter 1,$(words $(SHELL))),$(call _sm.plain,$(SHELL)), \
  $(filter sh bash dash ksh mksh ash,$(notdir $(SHELL))), \
  $(if $(filter bash,$(notdir $(SHELL))),$(if $(value BASH_ENV),,no-bash-env),sh))
_sm.flags_ok = $(and $(filter default file,$(origin .SHELLFLAGS)),$(call _sm.fixed,.SHELLFLAGS))
# A makefile that expands .SHELLFLAGS itself (`$(.SHELLFLAGS)`, `$(value .SHELLFLAGS)`) would see
# the shim's words: it is not traced. So is one whose text cannot be read again safely (stdin,
# a pipe, a device).
_sm.refs := SHELLFLAGS$(_sm.rp) SHELLFLAGS}
_sm.readable = $(and $(wildcard $1),$(if $(wildcard $1/.),,file),$(filter-out \
  /dev/% /proc/%,$(realpath $1)))
_sm.mention = $(findstring $2,$(file <$1))
_sm.mentions = $(if $(call _sm.readable,$1), \
  $(foreach _sm.w,$(_sm.refs),$(call _sm.mention,$1,$(_sm.w))),unreadable)
_sm.texts_ok = $(if $(strip $(foreach _sm.f,$(MAKEFILE_LIST),$(call _sm.mentions,$(_sm.f)))),,ok)
_sm.on := $(and \
  $(if $(filter 3.% 4.0% 4.1%,$(MAKE_VERSION)),,new), \
  $(if $(findstring n,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring q,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring p,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring t,$(firstword -$(MAKEFLAGS))),,run), \
  $(call _sm.allows,DO_NOT_TRACK), $(call _sm.allows,SEND_METRICS_DISABLED), \
  $(strip $(if $(value SEND_METRICS_MAKE_RUN),$(and $(call _sm.plain,$(value \
       SEND_METRICS_MAKE_RUN)),$(wildcard $(value SEND_METRICS_MAKE_RUN))), \
       $(and $(if $(value SEND_METRICS_ACTIVE),,outermost),$(call _sm.plain,$(_sm.bin)), \
             $(_sm.cache),$(_sm.state),$(_sm.granted)))), \
  $(_sm.shell_ok),$(_sm.flags_ok),$(_sm.self),$(_sm.texts_ok))
ifneq ($(_sm.on),)
_sm.shell := $(SHELL)
_sm.shell_raw := $(value SHELL)
_sm.flags := $(.SHELLFLAGS)
_sm.dir := $(call _sm.one,$(CURDIR))
_sm.head := $(_sm.self) $(or $(MAKELEVEL),0)
_sm.tail := $(or $(_sm.bin),-) $(if $(_sm.cache),$(_sm.cache)/send_metrics-make,-) $(_sm.dir)
_sm.at = $(if $(filter automatic,$(origin @)),$@)
_sm.deps = $(if $(filter automatic,$(origin ^)),$^ $|)
# At most 8 prerequisites (a trailing `,` says there were more): one argument stays far below
# Linux's 128 KiB limit per argument. They only serve the critical path.
_sm.prereqs = $(call _sm.list,$(wordlist 1,8,$1))$(if $(word 9,$1),$(_sm.comma))
# A bash option or startup file set for the line (SHELLOPTS, BASHOPTS, BASH_ENV, maybe only for
# this target) would apply to the shim's own code too: such a line is not traced.
_sm.bash_free = $(if $(value SHELLOPTS)$(value BASHOPTS)$(value BASH_ENV),,free)
_sm.goals = $(call _sm.list,$(or $(value MAKECMDGOALS),$(value .DEFAULT_GOAL)))
# A target with its own SHELL runs as it would without this file, untraced; one with its own
# .SHELLFLAGS never reads this definition.
.SHELLFLAGS = $(if $(and $(call _sm.eq,$(value SHELL),$(_sm.shell_raw)),$(_sm.bash_free)), \
  $(_sm.head) $(call _sm.one,$(_sm.at)) $(call _sm.prereqs,$(_sm.deps)) $(_sm.goals) $(_sm.tail) \
  $(if $(filter -j%,$(MAKEFLAGS)),j,-) $(_sm.shell)$(_sm.space))$(_sm.flags)
endif
endif
# A makefile's own pattern rule (`%.mk: FORCE`) never remakes this file: a rule only for its name
# (a pattern with the shortest stem wins, never a default goal; explicit rules still win).
ifeq ($(notdir $(_sm.last))$(filter %send_metrics.mk,$(value MAKECMDGOALS)),send_metrics.mk)
s%nd_metrics.mk: ;
endif
# Not traced: none of the variables above stays ($(.VARIABLES) lists only the makefile's own;
# make before 3.82 has no `undefine`).
ifeq ($(_sm.on)$(filter 3.80% 3.81%,$(MAKE_VERSION)),)
$(foreach _sm.v,$(filter _sm.%,$(.VARIABLES)),$(eval undefine $(_sm.v)))
endif
