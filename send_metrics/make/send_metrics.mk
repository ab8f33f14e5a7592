# send_metrics.mk: one `-include send_metrics.mk` at the END of a GNU Makefile records one \
# event per make run, with where the time went per target (see `send_metrics makefile`). \
# This file is also the per-recipe-line shell shim: make runs `/bin/sh send_metrics.mk \
# TARGET PREREQUISITES GOALS MAKELEVEL BIN DIR SHELL FLAGS... LINE`; the sh code below \
# notes the line's start and end in the run's trace file, runs the line with the makefile's \
# own SHELL and flags, and exits with its status. A $(shell ...) call, which make runs the \
# same way but with its own MAKELEVEL (not one more), is run untouched. The first line of \
# the outermost make starts the watcher that records the event once make has ended; INT, QUIT \
# and HUP are ignored while it is forked, so a Ctrl-C at that moment cannot kill it before it \
# leaves make's session. \
# Make reads these lines as one comment (each ends with a backslash). The shim's own \
# variables are named _sm_*: a variable the recipe's environment holds is never assigned, so \
# the line runs with the environment make gave the shim (plus SEND_METRICS_MAKE_RUN). \
_sm_t=$1 _sm_q=$2 _sm_g=$3 _sm_l=$4 _sm_b=$5 _sm_d=$6; shift 6; \
[ "${MAKELEVEL:-0}" != "$_sm_l" ] || exec "$@"; \
_sm_f=${SEND_METRICS_MAKE_RUN:-}; \
if [ -z "$_sm_f" ]; then \
  _sm_f=$_sm_d/$PPID.trace; \
  if [ ! -e "$_sm_f" ]; then \
    [ -d "$_sm_d" ] || mkdir -p -m 700 "$_sm_d" 2>/dev/null; \
    if (set -C; read -r s </proc/$PPID/stat || s=; set -- $s; \
        printf 'H\t%s\t%s\t%s\t%s\n' "$PPID" "${22:-}" "${MAKEFLAGS%% *}" "$_sm_g" >"$_sm_f") \
        2>/dev/null; \
    then trap '' INT QUIT HUP; "$_sm_b" _make-watch "$_sm_f" </dev/null >/dev/null 2>&1 & \
      trap - INT QUIT HUP; \
    fi; \
  fi; \
  SEND_METRICS_MAKE_RUN=$_sm_f; export SEND_METRICS_MAKE_RUN; \
fi; \
{ read -r _sm_s _sm_x </proc/uptime; } 2>/dev/null || _sm_s=$(date +%s); \
{ printf 'S\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$$" "$_sm_s" "$PPID" "$_sm_l" "$PWD" "$_sm_t" \
  "$_sm_q" >>"$_sm_f"; } 2>/dev/null; \
"$@"; _sm_e=$?; \
{ read -r _sm_s _sm_x </proc/uptime; } 2>/dev/null || _sm_s=$(date +%s); \
{ printf 'E\t%s\t%s\t%s\n' "$$" "$_sm_s" "$_sm_e" >>"$_sm_f"; } 2>/dev/null; \
exit $_sm_e

# The make part. Nothing here spawns a process: the checks use only make's own functions, so
# `make -n`, `-q`, `-p` (tab completion runs `make -pRrq`) and a make with nothing to do cost
# nothing. Tracing is on only when all hold: GNU make 4.2 or later; not -n, -q, -p or -t;
# DO_NOT_TRACK and SEND_METRICS_DISABLED unset (or exactly 0/false/no/off); an absolute HOME
# (or XDG directories); and either a traced make above us (recursive $(MAKE), or
# `send_metrics wrap`) or a recorded yes and send_metrics on PATH. Otherwise this file changes
# nothing.
ifndef _send_metrics_mk
_send_metrics_mk := 1
SEND_METRICS_APP ?= send_metrics
_sm_self := $(abspath $(lastword $(MAKEFILE_LIST)))
# The off switches, as `fastpath.env_flag` reads them: only empty, 0, false, no or off (ASCII
# case folded, nothing around them) leave tracing on; " ", "0 ", "OFF " turn it off. Each value
# is read raw with $(value), never expanded, and compared whole: <v> and <word> each contain
# the other only when they are equal.
_sm_lower = $(subst A,a,$(subst B,b,$(subst C,c,$(subst D,d,$(subst E,e,$(subst F,f,$(subst \
  G,g,$(subst H,h,$(subst I,i,$(subst J,j,$(subst K,k,$(subst L,l,$(subst M,m,$(subst \
  N,n,$(subst O,o,$(subst P,p,$(subst Q,q,$(subst R,r,$(subst S,s,$(subst T,t,$(subst \
  U,u,$(subst V,v,$(subst W,w,$(subst X,x,$(subst Y,y,$(subst Z,z,$1))))))))))))))))))))))))))
_sm_is_off = $(strip $(foreach _sm_w,<> <0> <false> <no> <off>,$(and \
  $(findstring <$1>,$(_sm_w)),$(findstring $(_sm_w),<$1>))))
_sm_allows = $(call _sm_is_off,$(call _sm_lower,$(value $1)))
# An empty or relative HOME is no home (never `/.config`): without XDG directories, no tracing.
_sm_home := $(if $(filter /%,$(firstword $(HOME))),$(HOME))
_sm_config := $(or $(filter /%,$(XDG_CONFIG_HOME)),$(if $(_sm_home),$(_sm_home)/.config))
_sm_cache := $(or $(filter /%,$(XDG_CACHE_HOME)),$(if $(_sm_home),$(_sm_home)/.cache))
_sm_state := $(if $(_sm_config),$(firstword \
  $(wildcard $(_sm_config)/$(SEND_METRICS_APP)/metrics.toml)))
_sm_granted = $(findstring decision = "granted",$(file <$(_sm_state)))
_sm_bin := $(firstword $(wildcard $(addsuffix /send_metrics,$(subst :, ,$(PATH)))))
_sm_flags := $(or $(.SHELLFLAGS),-c)
_sm_on := $(and \
  $(if $(filter 3.% 4.0% 4.1%,$(MAKE_VERSION)),,new), \
  $(if $(findstring n,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring q,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring p,$(firstword -$(MAKEFLAGS))),,run), \
  $(if $(findstring t,$(firstword -$(MAKEFLAGS))),,run), \
  $(call _sm_allows,DO_NOT_TRACK), $(call _sm_allows,SEND_METRICS_DISABLED), \
  $(if $(filter 3,$(words $(SHELL) $(_sm_self) $(_sm_cache))),no-spaces), \
  $(or $(SEND_METRICS_MAKE_RUN), \
       $(and $(if $(SEND_METRICS_ACTIVE),,outermost),$(_sm_bin),$(_sm_state),$(_sm_granted))))
ifneq ($(_sm_on),)
_sm_comma := ,
_sm_space := $() $()
_sm_lp := (
_sm_rp := )
# Names become single words that make passes to the shim without a shell: characters a shell
# would read (quotes, $, parentheses of archive members...) become _, and lists are joined by ,.
_sm_safe = $(subst $(_sm_space),$(_sm_comma),$(or $(subst ',_,$(subst ",_,$(subst `,_,$(subst \
  $$,_,$(subst $(_sm_lp),_,$(subst $(_sm_rp),_,$(subst ;,_,$(subst &,_,$(subst |,_,$(subst \
  <,_,$(subst >,_,$(subst *,_,$(subst ?,_,$(subst [,_,$(subst ],_,$(subst \,_,$(strip \
  $1))))))))))))))))),-))
_sm_shell := $(SHELL)
SHELL := /bin/sh
.SHELLFLAGS = $(_sm_self) $(call _sm_safe,$@) $(call _sm_safe,$^ $|) $(call _sm_safe,$(or \
  $(MAKECMDGOALS),$(.DEFAULT_GOAL))) $(or $(MAKELEVEL),0) $(or $(_sm_bin),-) \
  $(_sm_cache)/send_metrics-make $(_sm_shell) $(_sm_flags)
endif
endif
