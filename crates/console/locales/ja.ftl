# mimamori コンソール — 日本語。ここの ID はすべて en.ftl にもあること(テストで確認)。

## ページ
page-overview = 概要
page-alerts = アラート
page-alert = アラート詳細
page-campaigns = キャンペーン
page-campaign = キャンペーン詳細
page-audit = 監査ログ

## 枠
skip-to-content = 本文へ移動
nav-label = メイン
signed-in-as = { $org } の { $role }
scope-subtree = 配下を含めて閲覧:
scope-only = 自組織のみ閲覧:
times-in = 時刻の表示:
sign-out = サインアウト

## サインイン
sign-in-title = サインイン
sign-in-password = ユーザー名とパスワードで
sign-in-token = API トークンで
sign-in = サインイン
field-org = 組織(スラッグ)
field-username = ユーザー名
field-password = パスワード
field-token = トークン
sign-in-failed = 組織、ユーザー名、またはパスワードが正しくありません。
sign-in-token-failed = このトークンは無効です(不明、失効、または期限切れ)。
sign-in-role-refused = このトークンのロールではコンソールを使えません(センサーと DNS クライアントは不可)。
session-expired = セッションが終了しました。もう一度サインインしてください。

## エラー
error-title = 問題が発生しました
error-not-found-title = 見つかりません
error-not-found = ここには何もないか、閲覧範囲の外です。
error-forbidden-title = 許可されていません
error-forbidden = このページはあなたのロールでは開けません。
error-bad-request-title = 実行できませんでした
error-bad-status = アラートの状態として正しくありません。
error-csrf = フォームが古いか、別のサイトから送信されました。ページを再読み込みしてやり直してください。
back-to-overview = 概要に戻る

## 概要
overview-totals = 集計
overview-open-alerts = 未対応のアラート
overview-new-alerts = 新規(未確認)
overview-urgent = 未対応で重大度が高以上
overview-campaigns = キャンペーン
overview-all-alerts = アラート総数
overview-timeline = 初回検知されたアラート(直近 { $hours } 時間)
overview-by-org = 組織別の未対応アラート
overview-no-open = 未対応のアラートはありません。
overview-campaigns-title = 組織横断のキャンペーン

## 重大度と状態
severity-critical = 緊急
severity-high = 高
severity-medium = 中
severity-low = 低
severity-informational = 情報
status-new = 新規
status-acknowledged = 確認済み
status-investigating = 調査中
status-resolved = 解決済み
status-false-positive = 誤検知

## 一覧
filters = 絞り込み
any = すべて
only-open = 未対応のみ
apply = 適用
clear = 解除
pages = ページ
first-page = 最初のページ
next-page = 次のページ
alerts-none = 該当するアラートはありません。
in-campaign = キャンペーン
retro = 遡及ハント
col-org = 組織
col-orgs = 組織
col-severity = 重大度
col-status = 状態
col-kind = 種類
col-title = 件名
col-entity = 対象
col-events = イベント数
col-alerts = アラート数
col-rule = ルール
col-first-seen = 初回検知
col-last-seen = 最終検知
col-total = 合計
col-time = 日時
col-actor = 実行者
col-action = 操作
col-target = 対象
col-from = 接続元

## アラート詳細と対応
assigned-to = 担当:
workflow = 対応
action-acknowledge = 確認済みにする
action-investigate = 調査を開始
action-resolve = 解決済みにする
action-false-positive = 誤検知とする
action-assign-me = 自分を担当にする
action-unassign = 担当を外す
comment-add = コメントを追加
comment-post = コメントを投稿
comments = コメント
comments-none = コメントはまだありません。
history = 履歴
history-none = 変更はまだありません。
history-status = 状態 { $from } → { $to }
history-assignee = 担当 → { $to }
context = コンテキスト
matching-events = 一致したイベント

## キャンペーン
campaigns-none = キャンペーンはありません。
campaign-orgs = { $count } 組織で検知
campaign-key = キー
campaign-members = このキャンペーンのアラート

## ハント
page-hunt = ハント
hunt-sql = イベントアーカイブへの SQL(テーブル events、OCSF 1.3 の列)
hunt-help = テーブルにはあなたの組織のイベントだけが入っています。表示は最大 1,000 行、ダウンロードは 10,000 行、実行は最長 30 秒です。
hunt-run = 実行
hunt-csv = CSV をダウンロード
hunt-json = JSON をダウンロード
hunt-summary = { $orgs } 組織から { $count } 行({ $ms } ミリ秒)。
hunt-truncated = (打ち切り:条件を絞るかダウンロードしてください)

## インテリジェンス
page-intel = インテリジェンス
page-indicator = 指標
page-intel-import = インテリジェンスの取り込み
intel-contains = 値に含む文字列
intel-active-only = 有効なもののみ
intel-import = 取り込む
intel-none = 該当する指標はありません。
intel-value = 値
intel-confidence = 確度
intel-owner = 所有組織
intel-sightings = 観測数
intel-detection = 検知と遮断に使用
intel-sources = 出典
intel-tags = タグ
intel-related = 関連
intel-sightings-title = 組織横断の観測
intel-no-sightings = あなたの組織のテレメトリでは観測されていません。
intel-sightings-summary = { $count } 回観測。観測した組織:
intel-format = 形式
intel-format-plain = プレーンリスト(1 行に 1 件)
intel-default-tlp = TLP の指定がない指標の TLP
intel-source = 出典名
intel-file = ファイルから読み込む(任意)
intel-document = 文書(貼り付けるか、上でファイルを選択)
intel-imported = 新規 { $count } 件、更新 { $updated } 件、変更なし { $unchanged } 件、却下 { $rejected } 件。
intel-retro-started = アーカイブの遡及ハントを開始しました:
intel-rejects = 却下
intel-unsupported = 利用できないもの
intel-see-list = 指標の一覧へ
yes = はい
no = いいえ

## 管理
page-dns = 保護 DNS
page-orgs = 組織
page-users = ユーザー
page-tokens = トークン
org-kind = 種別
org-sector = 分野
org-networks = ネットワーク
org-domains = ドメイン
org-open-alerts = 未対応アラート
user-role = ロール
user-name = 氏名
user-created = 作成日時
user-disabled = 無効
user-active = 有効
user-disable = 無効にする
user-add = ユーザーを追加
user-password-rule = (12 文字以上)
token-name = 用途
token-expires = 有効期限
token-never = なし
token-revoked = 失効
token-revoke = 失効させる
token-add = トークンを発行
token-days = 有効日数(0 は無期限)
token-issued = トークン「{ $name }」を発行しました。今すぐコピーしてください。保存されず、再表示できません。
dns-help = 保護 DNS リゾルバの組織ごとのリストです。ブロックはその組織と配下すべてに適用されます。許可はその組織をインテリジェンスとゾーンのブロックから除外しますが、上位組織のブロックは除外しません。サブドメインも対象です。
dns-none = 許可・ブロックの登録はありません。
dns-list = リスト
dns-allow = 許可
dns-block = ブロック
dns-domain = ドメイン
dns-comment = 理由
dns-remove = 削除
dns-add = 登録を追加
