# Build the Windows installer: PyInstaller bundle, then Inno Setup, with the version taken
# from clinic_desktop.__version__ (pyproject.toml reads the same constant), so it is written in one place only.
# Run from the repository root in PowerShell, with Python 3.11+ and Inno Setup 6 installed:
#   powershell -ExecutionPolicy Bypass -File installer\windows\build.ps1
$ErrorActionPreference = "Stop"
if (-not (Test-Path .venv)) { py -3 -m venv .venv }
.\.venv\Scripts\python -m pip install -e ".[installer,filekeyring]"
.\.venv\Scripts\python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller installer\clinic-desktop.spec
$version = .\.venv\Scripts\python -c "import clinic_desktop; print(clinic_desktop.__version__)"
$iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"
& $iscc "/DAppVersion=$version" installer\windows\clinic-desk.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed ($LASTEXITCODE)" }
Write-Host "dist\clinic-desk-$version-setup.exe"
