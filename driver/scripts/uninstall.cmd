@echo off
rem uninstall.cmd - stops and removes agentsh.sys and its driver-store package (run as Administrator).
setlocal
fltmc unload agentsh
sc.exe delete agentsh
powershell -NoProfile -Command ^
  "$lines = pnputil /enum-drivers | Out-String -Stream;" ^
  "for ($i = 0; $i -lt $lines.Count; $i++) { if ($lines[$i] -match 'Original Name:\s+agentsh\.inf') {" ^
  "  $oem = ($lines[$i-1] -split ':')[1].Trim(); pnputil /delete-driver $oem /uninstall /force } }"
exit /b 0
