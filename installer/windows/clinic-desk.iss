; Inno Setup 6 script for Clinic Desk on Windows (x64).
; Build on Windows after the PyInstaller bundle (installer\windows\build.ps1 does both):
;   iscc /DAppVersion=<clinic_desktop.__version__> installer\windows\clinic-desk.iss
; Input: dist\clinic-desktop\ (one-folder bundle). Output: dist\clinic-desk-<ver>-setup.exe.
;
; Data: the application keeps each user's store in %LOCALAPPDATA%\clinic-desk and its key in
; Windows Credential Manager (local machine). This installer never writes there; an upgrade
; replaces only the program folder, and uninstalling keeps the data unless the person says
; otherwise at the prompt.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=x.y.z (build.ps1 reads clinic_desktop.__version__)
#endif

#define AppName "Clinic Desk"
#define AppExe "clinic-desktop.exe"
#define BundleDir "..\..\dist\clinic-desktop"
#define DataDirName "clinic-desk"

[Setup]
; One fixed AppId: a newer version installs over the older one in place.
AppId={{6C4E8F0A-3B1D-4F5E-9C2A-7D18E2B4A961}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Clinic Desk
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=clinic-desk-{#AppVersion}-setup
SetupIconFile=..\icons\clinic-desk.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[InstallDelete]
; Upgrades: drop the previous version's libraries first so no stale file is loaded.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\{#AppExe}"; DestDir: "{app}"; Flags: ignoreversion
Source: "{#BundleDir}\_internal\*"; DestDir: "{app}\_internal"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\icons\clinic-desk.ico"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; IconFilename: "{app}\clinic-desk.ico"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; IconFilename: "{app}\clinic-desk.ico"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Python byte-code caches written next to the program at run time.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
{ Patient data stays unless the person explicitly asks to delete it (default: keep). }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{localappdata}\{#DataDirName}');
    if DirExists(DataDir) and not UninstallSilent() then
    begin
      if MsgBox('Clinic Desk has been removed.' + #13#10 + #13#10 +
                'Your patient records are still on this computer in:' + #13#10 + DataDir + #13#10 + #13#10 +
                'Delete them as well? This cannot be undone. Choose No to keep them ' +
                '(for example to reinstall later or to hand them to your administrator).',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
      begin
        DelTree(DataDir, True, True, True);
      end;
    end;
  end;
end;
